"""Restarts: a clean stop loses no counted call; a crash keeps history and recording goes on."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory
from history_helpers import (
    HISTORY, LIVE, MANUAL, calls_of, dicts, export, history_duplicates, marker, one, poll, rows,
    sleep_past_bucket_end, stop_and_start,
)
from pgserver import PgServer

MARKERS = ("SELECT count(*) FROM hist_restart_a", "SELECT count(*) FROM hist_restart_b")


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets, no automatic export; the marker tables exist."""
    server = make_server(settings=dict(MANUAL))
    server.sql("CREATE TABLE hist_restart_a (a int); CREATE TABLE hist_restart_b (a int)")
    return server


def live_buckets(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every column but bucket_done of the live marker rows (the open bucket ends meanwhile)."""
    found = dicts(conn, f"SELECT * FROM {LIVE} WHERE query = ANY(%s)"
                        " ORDER BY bucket_start_time, query", list(MARKERS))
    for row in found:
        del row["bucket_done"]
    return found


@pytest.mark.slow
def test_fast_stop_loses_no_counted_call(srv: PgServer) -> None:
    """Exported, finished and current buckets at a fast stop: all calls are found afterwards."""
    ran = {sql: 0 for sql in MARKERS}
    with srv.connect() as conn:
        for rounds in (3, 4):
            for sql in MARKERS:
                for _ in range(rounds):
                    conn.execute(sql)
                ran[sql] += rounds
            sleep_past_bucket_end()
            if rounds == 3:
                assert export(conn) > 0
        for sql in MARKERS:  # the bucket still open at the stop
            for _ in range(5):
                conn.execute(sql)
            ran[sql] += 5
        before = live_buckets(conn)
    stop_and_start(srv, "fast")
    with srv.connect() as conn:
        after = live_buckets(conn)
        found = {sql: calls_of(conn, HISTORY, sql) + calls_of(conn, LIVE, sql)
                 for sql in MARKERS}
        sleep_past_bucket_end()
        export(conn)
        exported = {sql: calls_of(conn, HISTORY, sql) for sql in MARKERS}
        left = {sql: calls_of(conn, LIVE, sql) for sql in MARKERS}
        dups = history_duplicates(conn)
    assert ran == {MARKERS[0]: 12, MARKERS[1]: 12}
    assert len(before) == 4
    assert after == before
    assert found == ran
    assert exported == ran
    assert left == {sql: 0 for sql in MARKERS}
    assert dups == []


def busy(server: PgServer, errors: list[BaseException]) -> None:
    """A backend running a long statement until it is killed."""
    try:
        with server.connect(application_name="hist_busy") as conn:
            conn.execute("SELECT pg_sleep(60)")
    except psycopg.OperationalError as exc:
        errors.append(exc)


def ready_after_crash(server: PgServer) -> bool:
    """The postmaster reinitialized after the crash and accepts connections again."""
    if "all server processes terminated; reinitializing" not in server.log():
        return False
    try:
        server.sql("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


@pytest.mark.slow
def test_sigkill_of_a_busy_backend_keeps_history_and_recording(srv: PgServer) -> None:
    """SIGKILL mid-statement: the server restarts, history keeps its rows, new calls count."""
    with srv.connect() as conn:
        exported_sql = marker(conn, "hist_crash_exported")
        conn.execute(exported_sql)
        sleep_past_bucket_end()
        export(conn)
        history_before = one(conn, f"SELECT count(*) FROM {HISTORY}")
        state_before = rows(conn, "SELECT exported_below, exports FROM pgsm_internal.pgsm_export_state")
        conn.execute(marker(conn, "hist_crash_unexported"))
    errors: list[BaseException] = []
    worker = threading.Thread(target=busy, args=(srv, errors))
    worker.start()
    [pid] = poll(lambda: [p for (p,) in srv.sql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'hist_busy'"
        " AND state = 'active'")], lambda pids: len(pids) == 1)
    os.kill(pid, signal.SIGKILL)
    worker.join(timeout=30)
    assert poll(lambda: ready_after_crash(srv), lambda ok: ok, timeout=60)
    srv.wait_ready()
    with srv.connect() as conn:
        history_after = one(conn, f"SELECT count(*) FROM {HISTORY}")
        state_after = rows(conn, "SELECT exported_below, exports FROM pgsm_internal.pgsm_export_state")
        exported = calls_of(conn, HISTORY, exported_sql)
        after_sql = marker(conn, "hist_after_crash")
        conn.execute(after_sql)
        seen = rows(conn, "SELECT calls FROM pg_stat_monitor WHERE query = %s", after_sql)
        dups = history_duplicates(conn)
    assert len(errors) == 1
    assert history_after == history_before
    assert state_after == state_before
    assert exported == 1
    assert seen == [(1,)]
    assert dups == []


DUMP = "pg_stat/pg_stat_monitor.stat"


@pytest.mark.parametrize("damage, message", [
    ("older format", "saved by a build with another file format (1, this build reads 5)"),
    ("truncated", "ignoring a truncated pg_stat_monitor statistics file"),
])
def test_unreadable_dump_is_logged_and_removed(srv: PgServer, damage: str, message: str) -> None:
    """A dump of another file format, or one cut inside its header, is not loaded: the log says
    why, the server starts, the file is removed, and recording goes on."""
    sql = f"SELECT count(*) FROM hist_restart_a WHERE a = {len(damage)}"
    with srv.connect() as conn:
        conn.execute(sql)
    srv.stop("fast")
    dump = srv.datadir / DUMP
    data = dump.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 5  # the format this build writes
    if damage == "older format":
        dump.write_bytes(data[:4] + (1).to_bytes(4, "little") + data[8:])
    else:
        dump.write_bytes(data[:6])
    srv.start()
    assert message in srv.log()
    assert not dump.exists()
    with srv.connect() as conn:
        assert calls_of(conn, LIVE, sql) == 0
        conn.execute(sql)
        assert calls_of(conn, LIVE, sql) == 1
