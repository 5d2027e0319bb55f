"""The background worker exports finished buckets by itself, and survives being killed."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from fixtures import ServerFactory
from history_helpers import (
    HISTORY, LIVE, calls_of, history_duplicates, marker, one, poll,
    stop_and_start,
)
from pgserver import PgServer

WORKER = "pg_stat_monitor worker"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets, the worker on (pgsm_export_auto defaults to on)."""
    return make_server(settings={"pg_stat_monitor.pgsm_bucket_time": "1"})


def worker_pids(server: PgServer) -> list[int]:
    """The pids of the worker as pg_stat_activity shows it (none while the server restarts)."""
    try:
        return [int(pid) for (pid,) in server.sql(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = %s", [WORKER])]
    except psycopg.OperationalError:
        return []


def exported_calls(server: PgServer, sql: str) -> int:
    """Calls of a statement in history; the poll's own statements end buckets."""
    with server.connect() as conn:
        return calls_of(conn, HISTORY, sql)


def test_worker_exports_finished_buckets_without_sql(srv: PgServer) -> None:
    """A statement's finished bucket reaches history with no call of pg_stat_monitor_export()."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_worker_auto")
        auto = one(conn, "SHOW pg_stat_monitor.pgsm_export_auto")
        for _ in range(3):
            conn.execute(sql)
    got = poll(lambda: exported_calls(srv, sql), lambda n: n == 3)
    with srv.connect() as conn:
        live = calls_of(conn, LIVE, sql)
        exporters = one(conn, "SELECT count(*) FROM pg_stat_monitor_internal(true)"
                              " WHERE query LIKE '%%pg_stat_monitor_export%%'")
    assert auto == "on"
    assert (got, live) == (3, 0)
    assert exporters == 0


def test_worker_shows_in_pg_stat_activity(srv: PgServer) -> None:
    """Exactly one process with backend_type 'pg_stat_monitor worker', in database postgres."""
    got = srv.sql("SELECT datname, application_name FROM pg_stat_activity"
                  " WHERE backend_type = %s", [WORKER])
    assert got == [("postgres", WORKER)]


@pytest.mark.slow
def test_killed_worker_comes_back_and_goes_on_exporting(srv: PgServer) -> None:
    """SIGKILL on the worker: after the crash restart a new worker exports again."""
    [old] = worker_pids(srv)
    os.kill(old, signal.SIGKILL)
    new = poll(lambda: worker_pids(srv), lambda pids: len(pids) == 1 and pids[0] != old)
    srv.wait_ready()
    with srv.connect() as conn:
        sql = marker(conn, "hist_worker_after_kill")
        conn.execute(sql)
        conn.execute(sql)
    got = poll(lambda: exported_calls(srv, sql), lambda n: n == 2)
    assert len(new) == 1 and new[0] != old
    assert "terminated by signal 9" in srv.log()
    assert got == 2


@pytest.mark.slow
def test_clean_restart_keeps_unexported_calls_and_the_worker_exports_them(
        srv: PgServer) -> None:
    """Calls still in shared memory at a fast stop are dumped, reloaded, then exported once."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_worker_restart")
        for _ in range(5):
            conn.execute(sql)
        # the current bucket is not finished: the worker cannot have exported it yet
        live_before = calls_of(conn, LIVE, sql) + calls_of(conn, HISTORY, sql)
    stop_and_start(srv, "fast")
    got = poll(lambda: exported_calls(srv, sql), lambda n: n >= 5)
    with srv.connect() as conn:
        live_after = calls_of(conn, LIVE, sql)
        dups = history_duplicates(conn)
    assert live_before == 5
    assert (got, live_after) == (5, 0)
    assert dups == []
    assert "pg_stat_monitor restored" in srv.log()
