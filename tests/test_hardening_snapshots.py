"""Other sessions' snapshots, transactions and slots make no statistics lost (issue 7.2, 7.3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory
from hardening_helpers import cpu_seconds, pgbench_transactions, run_pgbench, worker_pid
from history_helpers import one, rows, sleep_past_bucket_end
from pgserver import PgServer

TABLES = 500
SECONDS = 30
LIKE = "SELECT count(*) FROM t%"
OTHER_DB = "snap_other"
SLOT = "pgsm_hardening_slot"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets, logical WAL, and an export that keeps 1000 statements per bucket.

    pgsm_export_top_n = 1000 (more than the 500 statements) keeps each statement its own
    history row, so no call is folded into an '<other>' row.
    """
    server = make_server(settings={
        "pg_stat_monitor.pgsm_bucket_time": "1",
        "pg_stat_monitor.pgsm_export_top_n": "1000",
        "wal_level": "logical",
        "max_replication_slots": "4",
    })
    server.sql("DO $$ BEGIN FOR i IN 1.." + str(TABLES) + " LOOP"
               " EXECUTE format('CREATE TABLE t%s (a int)', i); END LOOP; END $$")
    server.sql("CREATE TABLE snap_w (a int)")
    server.sql(f"CREATE DATABASE {OTHER_DB}")
    return server


@pytest.fixture
def held_back(srv: PgServer) -> Iterator[None]:
    """An inactive logical slot, an open REPEATABLE READ snapshot in another database, and an
    idle open write transaction, all kept for the test's duration."""
    srv.sql("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [SLOT])
    rr = srv.connect(OTHER_DB)
    writer = srv.connect()
    try:
        rr.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        rr.execute("SELECT count(*) FROM pg_class").fetchall()
        writer.execute("BEGIN")
        writer.execute("INSERT INTO snap_w VALUES (1)")
        yield
    finally:
        rr.close()
        writer.close()
        srv.sql("SELECT pg_drop_replication_slot(%s)", [SLOT])


def last_done_bucket(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
    """In the view's latest finished bucket: distinct queryids of the load's statements,
    of those with their own text, and '<other>'/'<overflow>' rows."""
    [got] = rows(
        conn,
        "WITH v AS (SELECT * FROM pg_stat_monitor),"
        " b AS (SELECT max(bucket_start_time) AS s FROM v WHERE bucket_done)"
        " SELECT count(DISTINCT queryid) FILTER (WHERE query LIKE %s),"
        "        count(DISTINCT query) FILTER (WHERE query LIKE %s),"
        "        count(*) FILTER (WHERE query IN ('<other>', '<overflow>'))"
        " FROM v, b WHERE v.bucket_start_time = b.s", LIKE, LIKE)
    return int(got[0]), int(got[1]), int(got[2])


def calls_per_statement(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Calls of each load statement: history plus view rows of buckets not in history."""
    return {q: int(n) for q, n in rows(
        conn,
        "WITH h AS (SELECT query, calls, bucket_start_time FROM pg_stat_monitor_history),"
        " live AS (SELECT query, calls FROM pg_stat_monitor WHERE bucket_start_time NOT IN"
        "          (SELECT bucket_start_time FROM h))"
        " SELECT query, sum(calls) FROM (SELECT query, calls FROM h UNION ALL"
        "                                SELECT query, calls FROM live) a"
        " WHERE query LIKE %s GROUP BY query", LIKE)}


@pytest.mark.slow
def test_held_back_snapshots_lose_no_call_and_the_worker_stays_idle(
        srv: PgServer, held_back: None, tmp_path: Path) -> None:
    """Slot, old snapshot, open write: 0 lost, calls = transactions, worker < 10%, 500 rows."""
    # overflowed, dropped and discarded calls stay 0; each of the 500 statements has exactly
    # as many calls as pgbench ran transactions; the worker's CPU time stays under 10% of the
    # wall time; the view's latest finished bucket, read during the load, shows all 500
    # statements with their own texts and no '<other>' or '<overflow>' row
    script = tmp_path / "load.sql"
    script.write_text("".join(f"SELECT count(*) FROM t{i};\n" for i in range(1, TABLES + 1)))
    pid = worker_pid(srv)
    assert pid is not None
    with srv.connect() as conn:
        conn.execute("SELECT pg_stat_monitor_reset()")
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    bench = run_pgbench(srv, script, "-c", "2", "-T", str(SECONDS))
    time.sleep(SECONDS * 2 / 3)
    with srv.connect() as conn:
        during = last_done_bucket(conn)
    transactions = pgbench_transactions(bench, timeout=SECONDS * 3)
    cpu = cpu_seconds(pid) - cpu_before
    wall = time.monotonic() - wall_before
    sleep_past_bucket_end()
    with srv.connect() as conn:
        conn.execute("SELECT pg_stat_monitor_export()")
        calls = calls_per_statement(conn)
        [losses] = rows(conn, "SELECT overflowed_calls, dropped_calls, discarded_calls"
                              " FROM pg_stat_monitor_info")
        same_worker = one(conn, "SELECT pid FROM pg_stat_activity WHERE backend_type ="
                                " 'pg_stat_monitor worker'")
    assert transactions > 0
    assert losses == (0, 0, 0)
    assert len(calls) == TABLES
    assert sum(calls.values()) == transactions * TABLES
    assert {n for n in calls.values()} == {transactions}
    assert same_worker == pid
    assert cpu < 0.1 * wall, f"worker used {cpu:.1f} s of CPU in {wall:.1f} s"
    assert during == (TABLES, TABLES, 0)
