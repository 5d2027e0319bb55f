"""A role with CREATE on the extension's schema cannot break the export, maintenance,
histogram() or the view: overloads and squatting tables there are never reached."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fixtures import ServerFactory
from history_helpers import HISTORY, MANUAL, marker, one, poll, rows, sleep_to_bucket_start
from pgserver import PgServer

SQUATTER = "schema_squatter"
PREFIX = "pg_stat_monitor_history_p"

# made by the DBA before the attack: SQL-standard bodies are bound to the functions they
# call, so the squatter's overloads cannot make these calls ambiguous; what runs inside
# the extension's functions is what the test is about
DBA_WRAPPERS = [
    "CREATE SCHEMA dba",
    "CREATE FUNCTION dba.export() RETURNS bigint LANGUAGE sql"
    " BEGIN ATOMIC SELECT public.pg_stat_monitor_export(); END",
    "CREATE FUNCTION dba.maintain() RETURNS TABLE (action text, partition text) LANGUAGE sql"
    " BEGIN ATOMIC SELECT m.action, m.partition FROM public.pg_stat_monitor_maintain() m; END",
    "CREATE FUNCTION dba.histogram(b int, q bigint)"
    " RETURNS TABLE (range text, freq int, bar text) LANGUAGE sql"
    " BEGIN ATOMIC SELECT h.range, h.freq, h.bar FROM public.histogram(b, q)"
    " AS h(range text, freq int, bar text); END",
]


def extension_functions(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Name and input argument types of every function of the extension, in any schema."""
    return [(name, args) for name, args in rows(
        conn, "SELECT p.proname::text, oidvectortypes(p.proargtypes)"
              " FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid"
              " JOIN pg_extension e ON e.oid = d.refobjid"
              " WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'"
              " AND e.extname = 'pg_stat_monitor' ORDER BY 1, 2")]


def days_ahead(conn: psycopg.Connection[Any], n: int) -> list[str]:
    """Partition names of today (UTC) and the n days after it."""
    today = one(conn, "SELECT (now() AT TIME ZONE 'UTC')::date")
    return [f"{PREFIX}{today + dt.timedelta(days=i):%Y%m%d}" for i in range(n + 1)]


def squat(srv: PgServer) -> None:
    """As the squatter: a defaulted overload of every function name of the extension and
    tables named like the next days' partitions, in the extension's schema."""
    with srv.connect() as conn:
        functions = extension_functions(conn)
        names = days_ahead(conn, 3)
    with srv.connect(user=SQUATTER) as conn:
        for name, args in functions:
            extra = f"{args}, squat int DEFAULT 0" if args else "squat int DEFAULT 0"
            conn.execute(sql.SQL("CREATE FUNCTION public.{}({}) RETURNS int LANGUAGE sql"
                                 " AS 'SELECT 1'").format(sql.Identifier(name), sql.SQL(extra)))
        for name in names:
            conn.execute(sql.SQL("CREATE TABLE public.{} (a int)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """Its own server, DBA wrappers made, then squatted by a role with CREATE on public."""
    server = make_server(settings=dict(MANUAL))
    with server.connect() as conn:
        for statement in DBA_WRAPPERS:
            conn.execute(statement)
        conn.execute(f"CREATE ROLE {SQUATTER} LOGIN")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {SQUATTER}")
    squat(server)
    return server


def test_the_squatter_cannot_create_in_the_private_schema(srv: PgServer) -> None:
    """A table or function in pgsm_internal is refused to the squatter (42501)."""
    with srv.connect(user=SQUATTER) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE TABLE pgsm_internal.{days_ahead(conn, 1)[1]} (a int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE FUNCTION pgsm_internal.pgsm_freeze_buckets(squat int DEFAULT 0)"
                         " RETURNS int LANGUAGE sql AS 'SELECT 1'")


def test_export_and_maintenance_work_after_the_squat(srv: PgServer) -> None:
    """Export writes the marker into pgsm_internal's day partition; maintenance keeps 3 days."""
    with srv.connect() as conn:
        statement = marker(conn, "squat_export_marker")
        conn.execute(statement)
        sleep_to_bucket_start()
        written = one(conn, "SELECT dba.export()")
        stored = rows(conn, f"SELECT tableoid::regclass::text, calls FROM {HISTORY}"
                            " WHERE query = %s", statement)
        again = rows(conn, "SELECT action, partition FROM dba.maintain()")
        children = rows(conn, "SELECT inhrelid::regclass::text FROM pg_inherits"
                              f" WHERE inhparent = '{HISTORY}'::regclass ORDER BY 1")
        expected = [f"pgsm_internal.{name}" for name in days_ahead(conn, 2)]
    assert written >= 1
    assert stored == [(expected[0], 1)]
    assert again == []
    assert children == [("pgsm_internal.pg_stat_monitor_history_default",)] + [
        (name,) for name in expected]


def test_histogram_and_view_work_after_the_squat(srv: PgServer) -> None:
    """histogram() of a statement run 3 times sums to 3; the view shows its 3 calls."""
    with srv.connect() as conn:
        statement = marker(conn, "squat_histogram_marker")
        sleep_to_bucket_start()
        for _ in range(3):
            conn.execute(statement)
        [(bucket, queryid, calls)] = rows(
            conn, "SELECT bucket, queryid, calls FROM public.pg_stat_monitor WHERE query = %s",
            statement)
        freqs = rows(conn, "SELECT freq FROM dba.histogram(%s, %s)", bucket, queryid)
    assert calls == 3
    assert len(freqs) == 22
    assert sum(f for (f,) in freqs) == 3


@pytest.mark.slow
def test_the_worker_keeps_exporting_after_the_squat(srv: PgServer) -> None:
    """With pgsm_export_auto on, the worker exports the marker's 2 calls into history."""
    with srv.connect() as conn:
        statement = marker(conn, "squat_worker_marker")
        conn.execute(statement)
        conn.execute(statement)
        conn.execute("ALTER SYSTEM SET pg_stat_monitor.pgsm_export_auto = on")
        conn.execute("SELECT pg_reload_conf()")
    try:
        exported = poll(lambda: srv.sql(f"SELECT coalesce(sum(calls), 0) FROM {HISTORY}"
                                        " WHERE query = %s", [statement])[0][0],
                        lambda calls: calls == 2)
    finally:
        with srv.connect() as conn:
            conn.execute("ALTER SYSTEM RESET pg_stat_monitor.pgsm_export_auto")
            conn.execute("SELECT pg_reload_conf()")
    assert exported == 2
