"""Local, temporary, I/O timing and JIT counters on a real server (API.md section 3).

A statement adds only the groups of counters it used; these tests check that each group
still adds up when it is used, call after call.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import one, reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

SORT = "SELECT a FROM generate_series(1, 200000) AS live_usage_sort(a) ORDER BY a DESC LIMIT 1"


def test_temporary_table_scan_counts_local_blocks(conn: psycopg.Connection[Any]) -> None:
    """Two scans of a temporary table: local hits plus reads are twice its pages."""
    conn.execute("DROP TABLE IF EXISTS live_usage_tmp")
    conn.execute("CREATE TEMP TABLE live_usage_tmp AS SELECT generate_series(1, 20000) AS a")
    pages = one(conn, "SELECT pg_relation_size('live_usage_tmp') / current_setting('block_size')::int")
    assert pages > 1
    reset(conn)
    for _ in range(2):
        conn.execute("SELECT count(*) FROM live_usage_tmp")
    [row] = stats(conn, "query = 'SELECT count(*) FROM live_usage_tmp'")
    assert row["calls"] == 2
    assert row["local_blks_hit"] + row["local_blks_read"] == 2 * pages
    assert row["shared_blks_read"] == 0
    assert row["temp_blks_written"] == 0


def run_twice(conn: psycopg.Connection[Any], query: str,
              settings: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The query's row after one run and after a second, under session settings that are
    reset afterwards."""
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    try:
        reset(conn)
        conn.execute(query)
        [first] = stats(conn, "query = %s", query)
        conn.execute(query)
        [second] = stats(conn, "query = %s", query)
    finally:
        for name in settings:
            conn.execute(f"RESET {name}")
    return first, second


def test_sort_spilling_to_disk_counts_temp_blocks_and_their_time(
        conn: psycopg.Connection[Any]) -> None:
    """A sort larger than work_mem writes and reads temporary blocks; with track_io_timing the
    time is counted; a second run adds the same number of blocks again."""
    first, second = run_twice(conn, SORT, {"work_mem": "64kB", "track_io_timing": "on"})
    assert first["temp_blks_written"] > 0
    assert first["temp_blks_read"] > 0
    assert first["temp_blk_write_time"] > 0
    assert second["calls"] == 2
    assert second["temp_blks_written"] == 2 * first["temp_blks_written"]
    assert second["temp_blks_read"] == 2 * first["temp_blks_read"]
    assert second["temp_blk_write_time"] > first["temp_blk_write_time"]
    assert second["local_blks_hit"] == 0


def test_jit_compiled_statement_counts_functions_and_times(conn: psycopg.Connection[Any]) -> None:
    """With JIT forced on, a statement counts JIT functions and generation time, twice as many
    functions after two runs.  The server package ships LLVM JIT, so it must be available."""
    assert one(conn, "SELECT pg_jit_available()") is True
    query = "SELECT sum(a) FROM generate_series(1, 1000) AS live_usage_jit(a)"
    first, second = run_twice(conn, query, {
        "jit": "on", "jit_above_cost": "0", "jit_optimize_above_cost": "0",
        "jit_inline_above_cost": "0"})
    assert first["jit_functions"] > 0
    assert first["jit_generation_time"] > 0
    assert first["jit_emission_count"] >= 1
    assert second["jit_functions"] == 2 * first["jit_functions"]
    assert second["jit_emission_count"] == 2 * first["jit_emission_count"]
