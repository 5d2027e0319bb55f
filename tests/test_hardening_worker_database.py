"""A pgsm_worker_database that does not exist: said once, old buckets discarded and counted
(issue 7.7). The tests run in file order: the second creates the database."""

from __future__ import annotations

import time

import pytest

from fixtures import ServerFactory
from hardening_helpers import log_lines
from history_helpers import one, poll, rows
from pgserver import PgServer

MISSING = "nosuchdb"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """The worker's database does not exist; 1-second buckets, a 2-bucket window."""
    return make_server(settings={
        "pg_stat_monitor.pgsm_worker_database": f"'{MISSING}'",
        "pg_stat_monitor.pgsm_bucket_time": "1",
        "pg_stat_monitor.pgsm_max_buckets": "2",
        "pg_stat_monitor.pgsm_export_interval": "1",
    })


@pytest.mark.slow
def test_missing_worker_database_is_logged_once_and_old_buckets_are_discarded(
        srv: PgServer) -> None:
    """12 s without the worker's database: one log message, no FATAL loop, calls discarded."""
    with srv.connect() as conn:
        for i in range(12):
            conn.execute("CREATE TABLE IF NOT EXISTS hard_wdb_marker (a int)")
            conn.execute("SELECT count(*) FROM hard_wdb_marker")
            time.sleep(1)
        conn.execute("SELECT count(*) FROM hard_wdb_marker")
        recorded = one(conn, "SELECT sum(calls) FROM pg_stat_monitor"
                             " WHERE query = 'SELECT count(*) FROM hard_wdb_marker'"
                             " AND bucket_start_time = (SELECT current_bucket_start"
                             "                          FROM pg_stat_monitor_info)")
        [(discarded, overflowed, dropped)] = rows(
            conn, "SELECT discarded_calls, overflowed_calls, dropped_calls"
                  " FROM pg_stat_monitor_info")
    fatal = log_lines(srv, "FATAL:", MISSING)
    said = [line for line in log_lines(srv, MISSING)
            if any(level in line for level in ("LOG:", "WARNING:", "ERROR:"))]
    assert len(fatal) <= 1, fatal
    assert len(said) <= 1, said
    assert len(fatal) + len(said) >= 1
    assert recorded >= 1
    assert discarded > 0
    assert (overflowed, dropped) == (0, 0)


@pytest.mark.slow
def test_worker_exports_once_its_database_and_extension_exist(srv: PgServer) -> None:
    """CREATE DATABASE and CREATE EXTENSION there: within 20 s the worker exports into it."""
    if not srv.sql("SELECT 1 FROM pg_database WHERE datname = %s", [MISSING]):
        srv.sql(f"CREATE DATABASE {MISSING}")
    srv.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_monitor CASCADE", dbname=MISSING)

    def history_rows() -> int:
        with srv.connect(MISSING) as conn:
            return int(one(conn, "SELECT count(*) FROM pg_stat_monitor_history"))

    exported = poll(history_rows, lambda n: n > 0, timeout=20)
    with srv.connect(MISSING) as conn:
        exports = one(conn, "SELECT coalesce(exports, 0) FROM pg_stat_monitor_info")
    assert exported > 0
    assert exports > 0
