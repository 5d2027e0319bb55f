"""Buckets: time slices of pgsm_bucket_time seconds, and reset across them (API.md section 3)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory, one, reset, rows, stats
from pgserver import PgServer

BUCKET_TIME = 2
MAX_BUCKETS = 10


@pytest.fixture(scope="module")
def bucket_server(make_server: ServerFactory) -> PgServer:
    """A server with 2-second buckets (ten of them, so older buckets stay in the view)."""
    return make_server(settings={
        "pg_stat_monitor.pgsm_bucket_time": str(BUCKET_TIME),
        "pg_stat_monitor.pgsm_max_buckets": str(MAX_BUCKETS),
    })


def sleep_into_next_bucket(length: int = BUCKET_TIME) -> None:
    """Sleep until just after the next multiple of the bucket length."""
    time.sleep(length - time.time() % length + 0.05)


def rows_of(conn: psycopg.Connection[Any], sql: str, expected: int) -> list[dict[str, Any]]:
    """The view's rows of a statement, read again (briefly) until there are as many as expected.

    Right after a bucket ends the worker moves it to history; a reader may see the move
    half done for an instant (reported separately), which this test is not about.
    """
    got = stats(conn, "query = %s", sql)
    for _ in range(10):
        if len(got) == expected:
            break
        time.sleep(0.02)
        got = stats(conn, "query = %s", sql)
    return got


def wait_until_finished_buckets_left_memory(conn: psycopg.Connection[Any]) -> None:
    """Wait (at most 5 s) until shared memory holds only the current bucket's entries."""
    sql = ("SELECT oldest_bucket_start IS NULL OR oldest_bucket_start >= current_bucket_start"
           " FROM pg_stat_monitor_info")
    for _ in range(250):
        if one(conn, sql):
            return
        time.sleep(0.02)
    raise AssertionError("the worker did not move the finished bucket out of shared memory")


def export_once(server: PgServer, length: int = BUCKET_TIME) -> None:
    """Let the worker move one finished bucket to history (its first pass adds partitions)."""
    with server.connect() as conn:
        conn.execute("SELECT count(*) FROM pg_aggregate")
        sleep_into_next_bucket(length)
        conn.execute("SELECT count(*) FROM pg_aggregate")
        wait_until_finished_buckets_left_memory(conn)


@pytest.mark.slow
def test_a_new_bucket_starts_a_new_row(bucket_server: PgServer) -> None:
    """The same statement in two buckets: two rows, the older done, the newer not."""
    sql = "SELECT 1 AS live_rotation"
    with bucket_server.connect() as conn:
        assert one(conn, "SHOW pg_stat_monitor.pgsm_bucket_time") == f"{BUCKET_TIME}s"
        reset(conn)
        conn.execute(sql)
        sleep_into_next_bucket()
        conn.execute(sql)
        got = rows_of(conn, sql, 2)
    assert len(got) == 2, got
    older, newer = got
    assert (older["calls"], newer["calls"]) == (1, 1)
    assert older["queryid"] == newer["queryid"]
    assert older["bucket_start_time"] < newer["bucket_start_time"]
    assert (older["bucket_done"], newer["bucket_done"]) == (True, False)
    for row in got:
        start = row["bucket_start_time"].timestamp()
        assert start == int(start)
        assert int(start) % BUCKET_TIME == 0
        assert row["bucket"] == (int(start) // BUCKET_TIME) % MAX_BUCKETS
    assert older["bucket"] != newer["bucket"]


@pytest.mark.slow
def test_reset_empties_the_view_including_finished_buckets(bucket_server: PgServer) -> None:
    """After pg_stat_monitor_reset() the view holds nothing from before it, finished or not."""
    # shapes of their own (a SELECT 1 AS x of the test above would share its row)
    old_sql = "SELECT count(*) FROM pg_am"
    with bucket_server.connect() as conn:
        conn.execute(old_sql)
        sleep_into_next_bucket()
        conn.execute("SELECT count(*) FROM pg_amop")
        wait_until_finished_buckets_left_memory(conn)
        assert len(rows_of(conn, old_sql, 1)) == 1
        reset(conn)
        got = rows(conn, "SELECT query, calls, bucket_done FROM pg_stat_monitor")
    assert got == [("SELECT pg_stat_monitor_reset()", 1, False)]


@pytest.mark.slow
def test_repeatable_read_reader_keeps_seeing_a_finished_bucket(bucket_server: PgServer) -> None:
    """In one REPEATABLE READ transaction, a bucket moved out of memory meanwhile is still seen."""
    sql = "SELECT count(*) FROM pg_amproc"
    view_calls = ("SELECT coalesce(sum(calls), 0) FROM pg_stat_monitor"
                  " WHERE query = 'SELECT count(*) FROM pg_amproc'")
    export_once(bucket_server)
    with bucket_server.connect() as conn, bucket_server.connect() as other:
        conn.execute(sql)
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            before = int(one(conn, view_calls))
            sleep_into_next_bucket()
            other.execute("SELECT count(*) FROM pg_opclass")
            wait_until_finished_buckets_left_memory(other)
            after = int(one(conn, view_calls))
    assert (before, after) == (1, 1)


@pytest.fixture(scope="module")
def one_second_server(make_server: ServerFactory) -> PgServer:
    """A server with 1-second buckets and a 30-bucket window."""
    return make_server(settings={
        "pg_stat_monitor.pgsm_bucket_time": "1",
        "pg_stat_monitor.pgsm_max_buckets": "30",
    })


@pytest.mark.slow
def test_calls_never_go_back_while_finished_buckets_are_moved_out(
        one_second_server: PgServer) -> None:
    """Read in a loop over ten bucket ends, a statement's total calls never decrease."""
    sql = "SELECT count(*) FROM pg_am"
    stop = time.monotonic() + 10
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with one_second_server.connect() as writer:
                while time.monotonic() < stop:
                    writer.execute(sql)
                    time.sleep(0.05)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)

    thread = threading.Thread(target=write)
    thread.start()
    drops: list[tuple[int, int]] = []
    highest = 0
    try:
        with one_second_server.connect() as reader:
            while time.monotonic() < stop - 0.2:
                calls = int(one(reader, "SELECT coalesce(sum(calls), 0) FROM pg_stat_monitor"
                                        " WHERE query = %s", sql))
                if calls < highest:
                    drops.append((highest, calls))
                highest = max(highest, calls)
    finally:
        thread.join()
    assert failures == []
    assert highest > 0
    assert drops == []


@pytest.mark.slow
def test_an_open_reader_does_not_block_the_view_while_a_partition_is_created(
        one_second_server: PgServer) -> None:
    """While a transaction that read the view stays open, others can still read the view."""
    export_once(one_second_server, 1)
    with one_second_server.connect() as admin:
        # the partition furthest ahead; dropping it makes the next export create it again,
        # as happens every day when a new day's partition is added
        ahead = one(admin, "SELECT max(c.relname::text) FROM pg_inherits i"
                           " JOIN pg_class c ON c.oid = i.inhrelid"
                           " WHERE i.inhparent = 'pg_stat_monitor_history'::regclass"
                           " AND c.relname <> 'pg_stat_monitor_history_default'")
        assert ahead is not None
        admin.execute(f"DROP TABLE pgsm_internal.{ahead}")
    with one_second_server.connect() as holder, one_second_server.connect() as other:
        holder.execute("BEGIN")
        holder.execute("SELECT count(*) FROM pg_stat_monitor")
        sleep_into_next_bucket(1)
        other.execute("SELECT count(*) FROM pg_opclass")  # the worker wakes and exports
        worker_waits = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND backend_type = 'pg_stat_monitor worker'")
        for _ in range(100):
            if one(other, worker_waits):
                break
            time.sleep(0.02)
        other.execute("SET statement_timeout = '3s'")
        try:
            got = rows(other, "SELECT count(*) > 0 FROM pg_stat_monitor")
            blocked = None
        except psycopg.errors.QueryCanceled as e:
            got, blocked = [], e
        finally:
            holder.execute("COMMIT")
    assert blocked is None
    assert got == [(True,)]
