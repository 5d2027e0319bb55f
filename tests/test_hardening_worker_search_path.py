"""The worker's SQL is search_path-proof: the owner of its database cannot hijack it (issue 7.1)."""

from __future__ import annotations

import time

import pytest

from fixtures import ServerFactory
from hardening_helpers import create_roles
from history_helpers import one, poll
from pgserver import PgServer

WORKER_DB = "mdb"
MALLORY = "mallory"

# every comparison the worker's catalog lookup could resolve through the search_path
# (oid = oid, name = text, name = unknown, int2 = int4, ...), each a trap that makes
# mallory superuser and then answers like the real operator
TRAPS = [("oid", "oid"), ("name", "text"), ("name", "name"), ("text", "text"),
         ("int2", "int4"), ("int2", "int2"), ("int4", "int4"), ('"char"', '"char"')]


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """The worker's database is mdb, owned by the plain role mallory; 1-second buckets."""
    server = make_server(settings={
        "pg_stat_monitor.pgsm_worker_database": f"'{WORKER_DB}'",
        "pg_stat_monitor.pgsm_bucket_time": "1",
        "pg_stat_monitor.pgsm_export_interval": "1",
    })
    create_roles(server, MALLORY)
    server.sql(f"CREATE DATABASE {WORKER_DB} OWNER {MALLORY}")
    server.sql("CREATE EXTENSION pg_stat_monitor CASCADE", dbname=WORKER_DB)
    return server


def exports(server: PgServer) -> int:
    """Exports the worker has made so far, read in its database with a pinned search_path."""
    with server.connect(WORKER_DB, options="-c search_path=pg_catalog") as conn:
        return int(one(conn, "SELECT coalesce(exports, 0) FROM public.pg_stat_monitor_info"))


def plant_operators(server: PgServer) -> None:
    """As mallory: '=' operators in public that make her superuser, first in mdb's search_path."""
    with server.connect(WORKER_DB, user=MALLORY) as conn:
        for left, right in TRAPS:
            conn.execute(
                f"CREATE FUNCTION public.evil(l {left}, r {right}) RETURNS boolean"
                " LANGUAGE plpgsql AS $$ BEGIN"
                f" EXECUTE 'ALTER ROLE {MALLORY} SUPERUSER';"
                " RETURN l OPERATOR(pg_catalog.=) r;"
                " EXCEPTION WHEN insufficient_privilege THEN"
                " RETURN l OPERATOR(pg_catalog.=) r; END $$")
            conn.execute(f"CREATE OPERATOR public.= (LEFTARG = {left}, RIGHTARG = {right},"
                         " FUNCTION = public.evil)")
        conn.execute(f"ALTER DATABASE {WORKER_DB} SET search_path = public, pg_catalog")


@pytest.mark.slow
def test_database_owner_cannot_become_superuser_through_the_worker(srv: PgServer) -> None:
    """Operators planted by mdb's owner never run in the worker; it stays exporting."""
    plant_operators(srv)
    srv.restart()
    before = exports(srv)
    with srv.connect() as conn:
        for i in range(4):
            conn.execute(f"SELECT {i} AS worker_search_path_load")
            time.sleep(1)
    after = poll(lambda: exports(srv), lambda n: n >= before + 2, timeout=20)
    superuser = srv.sql("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [MALLORY])
    with srv.connect(WORKER_DB, options="-c search_path=pg_catalog") as conn:
        recent = one(conn, "SELECT last_export_at > now() - interval '10 seconds'"
                           " FROM public.pg_stat_monitor_info")
    assert superuser == [(False,)]
    assert after >= before + 2
    assert recent is True
