"""Helpers of the history tests (test_history_*.py): settings, waits, queries, workloads."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

import psycopg
from psycopg.rows import dict_row

from pgserver import PgServer

T = TypeVar("T")

Conn = psycopg.Connection[Any]

# the live rows of shared memory not exported yet, texts included (an exported bucket stays in
# memory for the view until it leaves the window or its room is needed)
LIVE = ("(SELECT l.* FROM pg_stat_monitor_internal(true) l WHERE NOT EXISTS"
        " (SELECT FROM pg_stat_monitor_history h"
        "  WHERE h.bucket_start_time = l.bucket_start_time)) AS live")
# let exported buckets leave memory now, so that the view reads them from history
RELEASE = "SELECT pgsm_internal.pgsm_release_exported('infinity')"
HISTORY = "pg_stat_monitor_history"

# 1-second buckets, and the worker does not export behind the test's back
MANUAL = {
    "pg_stat_monitor.pgsm_bucket_time": "1",
    "pg_stat_monitor.pgsm_export_auto": "off",
}

# the identity of a history row: one row per statement key and bucket
HISTORY_KEY = (
    "bucket_start_time, queryid, userid, dbid, toplevel, client_ip, application_name,"
    " planid, elevel, sqlcode"
)


def rows(conn: Conn, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """All rows of a query."""
    return conn.execute(query, params or None).fetchall()


def one(conn: Conn, query: str, *params: Any) -> Any:
    """The single value of a one-row, one-column query."""
    result = rows(conn, query, *params)
    assert len(result) == 1, result
    assert len(result[0]) == 1, result
    return result[0][0]


def dicts(conn: Conn, query: str, *params: Any) -> list[dict[str, Any]]:
    """All rows of a query, as dicts."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(query, params or None).fetchall()


def export(conn: Conn) -> int:
    """Call pg_stat_monitor_export(); the number of history rows it wrote."""
    return int(one(conn, "SELECT pg_stat_monitor_export()"))


def sleep_past_bucket_end(bucket_time: float = 1.0) -> None:
    """Sleep until just after the end of the current bucket (the next multiple of its length)."""
    now = time.time()
    time.sleep(bucket_time - now % bucket_time + 0.1)


def sleep_to_bucket_start(bucket_time: float = 1.0) -> None:
    """Sleep to just after a bucket boundary, so a short workload stays in one bucket."""
    sleep_past_bucket_end(bucket_time)


def poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0,
         interval: float = 0.25) -> T:
    """Call fetch until done(result) or the deadline; the last result either way."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def distinct_statements(tag: str, n: int) -> list[str]:
    """n statements with distinct queryids (k output columns, k rows, k = 1..n), tagged."""
    return [
        f"SELECT {', '.join(['g'] * k)} FROM generate_series(1, {k}) g /* {tag} */"
        for k in range(1, n + 1)
    ]


def history_duplicates(conn: Conn) -> list[tuple[Any, ...]]:
    """Keys of history rows that occur more than once (a bucket exported twice)."""
    return rows(conn, f"SELECT {HISTORY_KEY}, count(*) FROM {HISTORY}"
                      f" GROUP BY {HISTORY_KEY} HAVING count(*) > 1")


def marker(conn: Conn, name: str) -> str:
    """A statement with a queryid of its own: a count over a table of that name (created).

    Constants and column aliases are not part of a queryid, so 'SELECT 1 AS name' would share
    its row with every other 'SELECT <constant>' of the bucket.
    """
    conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (a int)")
    return f"SELECT count(*) FROM {name}"


def calls_of(conn: Conn, table: str, query: str) -> int:
    """Sum of calls of the rows of a history table or reader with exactly this query text."""
    return int(one(conn, f"SELECT coalesce(sum(calls), 0) FROM {table} WHERE query = %s",
                   query))


def stop_and_start(server: PgServer, mode: str = "fast") -> None:
    """pg_ctl stop -m mode, then start again.

    PgServer.stop() leaves the executor's finished pg_ctl process behind, so a later
    PgServer.start() would wait for it forever; it is forgotten here before starting.
    """
    server.stop(mode)
    server.executor.process = None
    server.start()
