"""pg_stat_monitor_export(): finished buckets move to history, top N plus an exact '<other>'."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory
from history_helpers import (
    HISTORY, LIVE, MANUAL, calls_of, dicts, distinct_statements, export, history_duplicates,
    marker, one, poll, rows, sleep_past_bucket_end, sleep_to_bucket_start,
)
from pgserver import PgServer

TOP_N = 5
PER_BUCKET = 24


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets, no automatic export: only the test exports; two-phase commit allowed."""
    return make_server(settings={**MANUAL, "max_prepared_transactions": "2"})


def close(a: float, b: float) -> bool:
    """Two sums of execution times are equal up to rounding."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def capture_sums(conn: psycopg.Connection[Any]) -> dict[Any, tuple[int, int, float]]:
    """Per finished live bucket: sum(calls), sum(rows), sum(total_exec_time)."""
    got = rows(conn, f"SELECT bucket_start_time, sum(calls), sum(rows), sum(total_exec_time)"
                     f" FROM {LIVE} WHERE bucket_done GROUP BY 1")
    return {b: (int(c), int(r), float(t)) for b, c, r, t in got}


def capture_rows(conn: psycopg.Connection[Any]) -> dict[Any, list[dict[str, Any]]]:
    """Per finished live bucket: its rows (the counters the fold is checked against)."""
    by_bucket: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in dicts(conn, "SELECT bucket_start_time, queryid, calls, rows, total_exec_time,"
                           " min_exec_time, max_exec_time, mean_exec_time, stddev_exec_time,"
                           f" resp_calls FROM {LIVE}"
                           " WHERE bucket_done"):
        by_bucket[row["bucket_start_time"]].append(row)
    return dict(by_bucket)


def run_bucket(conn: psycopg.Connection[Any], tag: str) -> None:
    """Run PER_BUCKET distinct statements (some twice) at the start of a fresh bucket."""
    sleep_to_bucket_start()
    for i, sql in enumerate(distinct_statements(tag, PER_BUCKET)):
        conn.execute(sql)
        if i % 3 == 0:
            conn.execute(sql)


@pytest.mark.slow
def test_history_sums_per_bucket_equal_the_live_sums(srv: PgServer) -> None:
    """Three rounds of two buckets + export: each bucket's history sums equal its live sums."""
    sums: dict[Any, tuple[int, int, float]] = {}
    with srv.connect() as conn:
        conn.execute(f"SET pg_stat_monitor.pgsm_export_top_n = {TOP_N}")
        for rnd in range(3):
            run_bucket(conn, f"hist_sum_{rnd}a")
            run_bucket(conn, f"hist_sum_{rnd}b")
            sleep_past_bucket_end()
            captured = capture_sums(conn)
            assert not set(captured) & set(sums)  # an exported bucket left shared memory
            sums.update(captured)
            assert export(conn) > 0
        history = {b: (int(c), int(r), float(t)) for b, c, r, t in rows(
            conn, f"SELECT bucket_start_time, sum(calls), sum(rows), sum(total_exec_time)"
                  f" FROM {HISTORY} GROUP BY 1")}
        dups = history_duplicates(conn)
    assert len(sums) >= 6
    for bucket, (calls, nrows, total) in sums.items():
        assert bucket in history, bucket
        h_calls, h_rows, h_total = history[bucket]
        assert (h_calls, h_rows) == (calls, nrows), bucket
        assert close(h_total, total), (bucket, h_total, total)
    assert dups == []


@pytest.mark.slow
def test_top_n_rows_and_an_exact_other_row_per_bucket(srv: PgServer) -> None:
    """With top_n = 5: at most 6 rows per bucket, '<other>' holds the exact rest (min, max too)."""
    with srv.connect() as conn:
        conn.execute(f"SET pg_stat_monitor.pgsm_export_top_n = {TOP_N}")
        export(conn)
        conn.execute(f"TRUNCATE {HISTORY}")
        run_bucket(conn, "hist_topn")
        sleep_past_bucket_end()
        live = capture_rows(conn)
        export(conn)
        hist = dicts(conn, f"SELECT * FROM {HISTORY} ORDER BY bucket_start_time,"
                           " total_exec_time DESC")
    busy = [b for b, entries in live.items() if len(entries) > TOP_N + 1]
    assert busy, {b: len(e) for b, e in live.items()}
    for bucket in busy:
        entries = sorted(live[bucket], key=lambda r: (-r["total_exec_time"], -r["calls"],
                                                      r["queryid"]))
        kept, rest = entries[:TOP_N], entries[TOP_N:]
        exported = [h for h in hist if h["bucket_start_time"] == bucket]
        assert len(exported) == TOP_N + 1
        others = [h for h in exported if h["query"] == "<other>"]
        assert len(others) == 1
        [other] = others
        top = [h for h in exported if h["query"] != "<other>"]
        assert sorted(h["queryid"] for h in top) == sorted(r["queryid"] for r in kept)
        assert other["queryid"] is None
        assert other["calls"] == sum(r["calls"] for r in rest)
        assert other["rows"] == sum(r["rows"] for r in rest)
        assert close(other["total_exec_time"], sum(r["total_exec_time"] for r in rest))
        counted = [r for r in rest if r["calls"] > 0]
        assert other["min_exec_time"] == min(r["min_exec_time"] for r in counted)
        assert other["max_exec_time"] == max(r["max_exec_time"] for r in counted)
        histogram = [sum(int(r["resp_calls"][i]) for r in rest)
                     for i in range(len(rest[0]["resp_calls"]))]
        assert [int(v) for v in other["resp_calls"]] == histogram
        assert sum(int(v) for v in other["resp_calls"]) == other["calls"]
        assert close(other["mean_exec_time"], other["total_exec_time"] / other["calls"])
        # the population stddev of all the rest's samples, from each row's n, mean, stddev
        n = sum(r["calls"] for r in counted)
        mean = sum(r["total_exec_time"] for r in counted) / n
        squares = sum(r["calls"] * (r["stddev_exec_time"] ** 2 + r["mean_exec_time"] ** 2)
                      for r in counted)
        stddev = math.sqrt(max(squares / n - mean ** 2, 0.0))
        assert math.isclose(other["stddev_exec_time"], stddev, rel_tol=1e-6, abs_tol=1e-9)


def test_export_rows_land_in_day_partitions(srv: PgServer) -> None:
    """Exported rows are stored in the UTC day's partition
    pgsm_internal.pg_stat_monitor_history_pYYYYMMDD."""
    with srv.connect() as conn:
        conn.execute(marker(conn, "hist_partition_marker"))
        sleep_past_bucket_end()
        assert export(conn) > 0
        got = rows(conn, f"SELECT DISTINCT tableoid::regclass::text,"
                         " 'pgsm_internal.pg_stat_monitor_history_p'"
                         " || to_char(bucket_start_time AT TIME ZONE 'UTC', 'YYYYMMDD')"
                         f" FROM {HISTORY}")
        in_default = one(conn, "SELECT count(*) FROM pgsm_internal.pg_stat_monitor_history_default")
    assert got
    for stored_in, expected in got:
        assert stored_in == expected
    assert in_default == 0


def test_export_records_its_work_in_the_info_view(srv: PgServer) -> None:
    """pg_stat_monitor_info shows the last export's row count and counts exports."""
    with srv.connect() as conn:
        before = one(conn, "SELECT exports FROM pg_stat_monitor_info")
        conn.execute(marker(conn, "hist_info_marker"))
        sleep_past_bucket_end()
        written = export(conn)
        [(exports, last_rows)] = rows(
            conn, "SELECT exports, last_export_rows FROM pg_stat_monitor_info")
    assert written > 0
    assert (exports, last_rows) == (before + 1, written)


def test_a_failed_export_keeps_the_bucket_and_the_next_writes_it_once(srv: PgServer) -> None:
    """A trigger raising after the insert: live rows stay, no history; then exported once."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_failed_export")
        export(conn)
        conn.execute("CREATE FUNCTION hist_fail() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$BEGIN RAISE EXCEPTION 'hist_fail'; END$$")
        conn.execute(f"CREATE TRIGGER hist_fail AFTER INSERT ON {HISTORY}"
                     " FOR EACH ROW EXECUTE FUNCTION hist_fail()")
        try:
            for _ in range(3):
                conn.execute(sql)
            sleep_past_bucket_end()
            live_before = calls_of(conn, LIVE, sql)
            with pytest.raises(psycopg.errors.RaiseException, match="hist_fail"):
                export(conn)
            live_after = calls_of(conn, LIVE, sql)
            hist_after_failure = calls_of(conn, HISTORY, sql)
        finally:
            conn.execute(f"DROP TRIGGER hist_fail ON {HISTORY}")
            conn.execute("DROP FUNCTION hist_fail()")
        assert export(conn) > 0
        export(conn)
        hist_final = calls_of(conn, HISTORY, sql)
        live_final = calls_of(conn, LIVE, sql)
        [(rows_final,)] = rows(conn, f"SELECT count(*) FROM {HISTORY} WHERE query = %s",
                               sql)
        dups = history_duplicates(conn)
    assert (live_before, live_after, hist_after_failure) == (3, 3, 0)
    assert (hist_final, live_final, rows_final) == (3, 0, 1)
    assert dups == []


def test_a_failing_partition_trigger_keeps_the_bucket(srv: PgServer) -> None:
    """A raising trigger on the day and default partitions: the bucket stays, then goes once."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_failed_partition")
        export(conn)
        conn.execute(sql)
        sleep_past_bucket_end()
        part = one(conn, "SELECT 'pgsm_internal.pg_stat_monitor_history_p'"
                         " || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
        conn.execute("CREATE OR REPLACE FUNCTION hist_fail_part() RETURNS trigger"
                     " LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hist_fail_part'; END$$")
        conn.execute(f"CREATE TRIGGER hist_fail_part BEFORE INSERT ON {part}"
                     " FOR EACH ROW EXECUTE FUNCTION hist_fail_part()")
        conn.execute("CREATE TRIGGER hist_fail_part BEFORE INSERT ON"
                     " pgsm_internal.pg_stat_monitor_history_default"
                     " FOR EACH ROW EXECUTE FUNCTION hist_fail_part()")
        try:
            with pytest.raises(psycopg.errors.RaiseException, match="hist_fail_part"):
                export(conn)
            live_after = calls_of(conn, LIVE, sql)
            hist_after_failure = calls_of(conn, HISTORY, sql)
        finally:
            conn.execute(f"DROP TRIGGER hist_fail_part ON {part}")
            conn.execute("DROP TRIGGER hist_fail_part"
                         " ON pgsm_internal.pg_stat_monitor_history_default")
            conn.execute("DROP FUNCTION hist_fail_part()")
        export(conn)
        hist_final = calls_of(conn, HISTORY, sql)
        live_final = calls_of(conn, LIVE, sql)
    assert (live_after, hist_after_failure) == (1, 0)
    assert (hist_final, live_final) == (1, 0)


def test_export_rolled_back_to_a_savepoint_keeps_the_bucket(srv: PgServer) -> None:
    """Export, ROLLBACK TO SAVEPOINT, COMMIT: the insert is undone, so the bucket stays live."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_savepoint")
        export(conn)
        for _ in range(3):
            conn.execute(sql)
        sleep_past_bucket_end()
        conn.execute("BEGIN")
        conn.execute("SAVEPOINT before_export")
        written = export(conn)
        conn.execute("ROLLBACK TO SAVEPOINT before_export")
        conn.execute("COMMIT")
        live_after = calls_of(conn, LIVE, sql)
        hist_after = calls_of(conn, HISTORY, sql)
        export(conn)
        hist_final = calls_of(conn, HISTORY, sql)
    assert written > 0
    assert (live_after, hist_after) == (3, 0)
    assert hist_final == 3


def test_export_undone_by_an_exception_block_keeps_the_bucket(srv: PgServer) -> None:
    """An export whose PL/pgSQL block raises and is caught is undone: the bucket stays live."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_exception_block")
        export(conn)
        for _ in range(2):
            conn.execute(sql)
        sleep_past_bucket_end()
        conn.execute("DO $$ BEGIN PERFORM pg_stat_monitor_export(); RAISE EXCEPTION 'undo';"
                     " EXCEPTION WHEN raise_exception THEN NULL; END $$")
        live_after = calls_of(conn, LIVE, sql)
        hist_after = calls_of(conn, HISTORY, sql)
        export(conn)
        hist_final = calls_of(conn, HISTORY, sql)
    assert (live_after, hist_after) == (2, 0)
    assert hist_final == 2


def test_export_in_a_prepared_transaction_rolled_back_keeps_the_bucket(srv: PgServer) -> None:
    """Export, PREPARE TRANSACTION, ROLLBACK PREPARED: the bucket is neither lost nor doubled."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_prepared")
        export(conn)
        for _ in range(2):
            conn.execute(sql)
        sleep_past_bucket_end()
        conn.execute("BEGIN")
        export(conn)
        try:  # refusing to prepare an export is a correct outcome as well
            conn.execute("PREPARE TRANSACTION 'hist_prepared'")
            prepared = True
        except psycopg.Error:
            conn.execute("ROLLBACK")
            prepared = False
        conn.execute("SELECT 1")  # an unrelated transaction commits in the same session
        if prepared:
            conn.execute("ROLLBACK PREPARED 'hist_prepared'")
        live_after = calls_of(conn, LIVE, sql)
        hist_after = calls_of(conn, HISTORY, sql)
        export(conn)
        hist_final = calls_of(conn, HISTORY, sql)
    assert (live_after + hist_after, hist_final) == (2, 2)


def test_concurrent_exports_write_each_bucket_once(srv: PgServer) -> None:
    """One export holds the lock in an open transaction, a second waits: each bucket once."""
    results: list[int] = []
    errors: list[BaseException] = []

    def second_exporter() -> None:
        try:
            with srv.connect() as other:
                results.append(export(other))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with srv.connect() as conn, srv.connect() as first:
        sql = marker(conn, "hist_concurrent")
        for _ in range(4):
            conn.execute(sql)
        sleep_past_bucket_end()
        first.execute("BEGIN")
        first_written = export(first)
        waiter = threading.Thread(target=second_exporter)
        waiter.start()
        waiting = poll(
            lambda: one(conn, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                              " 'Lock' AND query = 'SELECT pg_stat_monitor_export()'"),
            lambda n: n == 1)
        first.execute("COMMIT")
        waiter.join(timeout=30)
        alive = waiter.is_alive()
        # a third export racing a fourth, both without an open transaction
        for _ in range(2):
            conn.execute(sql)
        sleep_past_bucket_end()
        racers = [threading.Thread(target=second_exporter) for _ in range(2)]
        for t in racers:
            t.start()
        for t in racers:
            t.join(timeout=30)
        export(conn)
        hist = calls_of(conn, HISTORY, sql)
        live = calls_of(conn, LIVE, sql)
        dups = history_duplicates(conn)
    assert waiting == 1
    assert not alive
    assert errors == []
    assert first_written > 0
    assert len(results) == 3
    assert (hist, live) == (6, 0)
    assert dups == []


def test_export_of_nothing_new_writes_nothing_twice(srv: PgServer) -> None:
    """Back-to-back exports: the second writes no row of a bucket the first wrote."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_idempotent")
        conn.execute(sql)
        sleep_past_bucket_end()
        export(conn)
        before = one(conn, f"SELECT count(*) FROM {HISTORY} WHERE query = %s", sql)
        export(conn)
        after = one(conn, f"SELECT count(*) FROM {HISTORY} WHERE query = %s", sql)
    assert (before, after) == (1, 1)
