"""Updating from upstream 2.3 where the update cannot simply proceed, and what it keeps: no
plpython3u yet, a user's view on upstream's pg_stat_monitor view (each a clear error that
changes nothing), the user's grants (kept), and other roles' texts hidden from a plain role
while upstream's view still reads through this library."""

from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from fixtures import error_of, one, rows
from pgserver import PgServer
from upgrade_helpers import (PrivateRoot, catalog_snapshot, extversion, start_upstream,
                             swap_to_ours)

DATABASES = ["no_plpython", "dependent_view", "grants", "hidden", "shape", "hostile"]
UPDATE = "ALTER EXTENSION pg_stat_monitor UPDATE TO '2.4'"


@pytest.fixture(scope="module")
def swapped(private_root: PrivateRoot,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """Upstream 2.3 created in one database per test, then this library in its place."""
    server = start_upstream(private_root, "2.3", tmp_path_factory.mktemp("up23"), DATABASES)
    try:
        swap_to_ours(private_root, server)
        yield server
    finally:
        server.cleanup()


def test_update_without_plpython3u_says_to_create_it(swapped: PgServer) -> None:
    """Without plpython3u the update fails with 42704 and the hint CREATE EXTENSION
    plpython3u; the extension stays upstream 2.3, its catalog unchanged."""
    with swapped.connect("no_plpython") as c:
        before = catalog_snapshot(c)
        err = error_of(c, UPDATE)
        assert err.sqlstate == "42704"
        assert err.diag.message_primary == 'required extension "plpython3u" is not installed'
        assert err.diag.message_hint == ("Run CREATE EXTENSION plpython3u first,"
                                         " then ALTER EXTENSION pg_stat_monitor UPDATE again.")
        assert extversion(c) == "2.3"
        assert catalog_snapshot(c) == before


def test_update_refuses_to_drop_a_users_view(swapped: PgServer) -> None:
    """A user's view on upstream's view makes the update fail with 2BP01 naming it; the
    extension stays 2.3 and the user's view keeps working."""
    with swapped.connect("dependent_view") as c:
        c.execute("CREATE EXTENSION plpython3u")
        c.execute("CREATE VIEW public.my_calls AS SELECT queryid, calls FROM pg_stat_monitor")
        before = catalog_snapshot(c)
        err = error_of(c, UPDATE)
        assert err.sqlstate == "2BP01"
        assert err.diag.message_primary == ("cannot update pg_stat_monitor: view public.my_calls"
                                            " depends on its view pg_stat_monitor")
        assert extversion(c) == "2.3"
        assert catalog_snapshot(c) == before
        assert rows(c, "SELECT count(*) >= 0 FROM public.my_calls") == [(True,)]


def acl(conn: psycopg.Connection[Any], kind: str, name: str) -> tuple[str, str]:
    """(current, initial) privileges of the view (kind 'r') or function ('f') of this name."""
    if kind == "r":
        [row] = rows(conn, "SELECT c.relacl::text, i.initprivs::text FROM pg_class c"
                           " JOIN pg_init_privs i ON i.objoid = c.oid AND i.classoid = 'pg_class'::regclass"
                           " WHERE c.oid = %s::regclass", name)
    else:
        [row] = rows(conn, "SELECT p.proacl::text, i.initprivs::text FROM pg_proc p"
                           " JOIN pg_init_privs i ON i.objoid = p.oid AND i.classoid = 'pg_proc'::regclass"
                           " WHERE p.oid = %s::regprocedure", name)
    return row[0], row[1]


def test_user_grants_and_revokes_survive_the_update(swapped: PgServer) -> None:
    """GRANT SELECT on the view to a role, REVOKE from PUBLIC and GRANT EXECUTE on
    pg_stat_monitor_reset() hold after the update; the initial privileges are this release's
    (pg_dump still dumps the user's grants)."""
    with swapped.connect("grants") as c:
        c.execute("DROP ROLE IF EXISTS pgsm_up_pmm")
        c.execute("CREATE ROLE pgsm_up_pmm LOGIN")
        c.execute("GRANT SELECT ON pg_stat_monitor TO pgsm_up_pmm")
        c.execute("REVOKE SELECT ON pg_stat_monitor FROM PUBLIC")
        c.execute("GRANT EXECUTE ON FUNCTION pg_stat_monitor_reset() TO pgsm_up_pmm")
        c.execute("CREATE EXTENSION plpython3u")
        c.execute(UPDATE)
        assert acl(c, "r", "pg_stat_monitor") == (
            "{postgres=arwdDxt/postgres,pgsm_up_pmm=r/postgres}",
            "{postgres=arwdDxt/postgres,=r/postgres}")
        assert acl(c, "f", "pg_stat_monitor_reset()") == (
            "{postgres=X/postgres,pgsm_up_pmm=X/postgres}", "{postgres=X/postgres}")
    with swapped.connect("grants", user="pgsm_up_pmm") as c:
        assert one(c, "SELECT count(*) >= 0 FROM pg_stat_monitor") is True
        c.execute("SELECT pg_stat_monitor_reset()")
    # the role's privileges are recorded as its own: it cannot be dropped while it holds them
    with swapped.connect("grants") as c:
        assert error_of(c, "DROP ROLE pgsm_up_pmm").sqlstate == "2BP01"


def test_upstream_view_hides_other_roles_texts(swapped: PgServer) -> None:
    """Before the update, a role without pg_read_all_stats reading upstream's view through this
    library sees '<insufficient privilege>' and no client_ip for other roles' statements."""
    swapped.sql("DROP ROLE IF EXISTS pgsm_up_plain")
    swapped.sql("CREATE ROLE pgsm_up_plain LOGIN")
    with swapped.connect("hidden", host="127.0.0.1") as c:
        c.execute("SELECT 'pgsm hidden probe'")
    with swapped.connect("hidden", user="pgsm_up_plain") as c:
        assert extversion(c) == "2.3"
        got = rows(c, "SELECT query, client_ip FROM pg_stat_monitor"
                      " WHERE username = 'postgres' AND datname = 'hidden'")
        assert got and {row for row in got} == {("<insufficient privilege>", None)}
    with swapped.connect("hidden") as c:
        got = rows(c, "SELECT query, host(client_ip) FROM pg_stat_monitor"
                      " WHERE query = 'SELECT ''pgsm hidden probe'''")
        assert got == [("SELECT 'pgsm hidden probe'", "127.0.0.1")]


def test_upstream_view_reads_converted_columns(swapped: PgServer) -> None:
    """Before the update, upstream's view shows a statement's relations, its histogram (and
    upstream's histogram() over it), the TCP client's address (::1 as 127.0.0.1: PMM reads no
    NULL) and upstream's extra counters as 0, converted from this library's row."""
    with swapped.connect("shape") as c:
        c.execute("CREATE TABLE public.shape_t (a int)")
    with swapped.connect("shape", host="127.0.0.1") as c:
        c.execute("SELECT count(*) FROM public.shape_t")
    with swapped.connect("shape", host="::1") as c:
        c.execute("SELECT count(*) FROM public.shape_t WHERE 'over_ipv6' IS NOT NULL")
    with swapped.connect("shape") as c:
        assert rows(c, "SELECT host(client_ip) FROM pg_stat_monitor"
                       " WHERE query LIKE '%%over_ipv6%%' AND query NOT LIKE '%%LIKE%%'") == [
            ("127.0.0.1",)]
        [(bucket, queryid, relations, resp_calls, client_ip)] = rows(
            c, "SELECT bucket, queryid, relations, resp_calls, host(client_ip)"
               " FROM pg_stat_monitor WHERE query = 'SELECT count(*) FROM public.shape_t'")
        # not in upstream's view on PostgreSQL 15, but in its function
        extra = one(c, "SELECT jit_deform_count + wal_buffers_full + parallel_workers_launched"
                       " FROM pg_stat_monitor_internal(true) WHERE queryid = %s", queryid)
        assert relations == ["public.shape_t"]
        assert len(resp_calls) == len(one(c, "SELECT range()")) and "1" in resp_calls
        assert client_ip == "127.0.0.1"
        assert extra == 0
        freq = rows(c, "SELECT sum(freq)::int FROM histogram(%s, %s)"
                       " AS h(range text, freq int, bar text)", bucket, queryid)
        assert freq == [(1,)]


def test_update_calls_no_operator_a_plain_role_planted(swapped: PgServer) -> None:
    """A plain role with CREATE on public plants = operators for (oid, regclass) and (oid,
    integer) that log who calls them: the update, run by a superuser, calls neither."""
    swapped.sql("DROP ROLE IF EXISTS upgrade_mallory; CREATE ROLE upgrade_mallory LOGIN")
    with swapped.connect("hostile") as c:
        c.execute("CREATE EXTENSION plpython3u; GRANT CREATE ON SCHEMA public TO upgrade_mallory")
    with swapped.connect("hostile", user="upgrade_mallory") as m:
        m.execute("CREATE TABLE public.trap_hits (who text); GRANT INSERT ON public.trap_hits"
                  " TO PUBLIC")
        for right in ("regclass", "integer"):
            m.execute(f"CREATE FUNCTION public.trap_eq(oid, {right}) RETURNS boolean"
                      " LANGUAGE sql AS $$ INSERT INTO public.trap_hits VALUES (current_user);"
                      " SELECT $1 OPERATOR(pg_catalog.=) $2::oid $$")
            m.execute(f"CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = {right},"
                      f" FUNCTION = public.trap_eq)")
    with swapped.connect("hostile") as c:
        c.execute(UPDATE)
        assert extversion(c) == "2.4"
        assert rows(c, "SELECT who FROM public.trap_hits") == []
