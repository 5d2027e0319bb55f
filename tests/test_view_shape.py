"""The pg_stat_monitor view keeps upstream's 65 columns, names, types and order."""

from __future__ import annotations

from typing import Any

import psycopg

from fixtures import rows

EXPECTED = [
    ("bucket", "bigint"), ("bucket_start_time", "timestamp with time zone"),
    ("userid", "oid"), ("username", "text"), ("dbid", "oid"), ("datname", "text"),
    ("client_ip", "inet"), ("pgsm_query_id", "bigint"), ("queryid", "bigint"),
    ("toplevel", "boolean"), ("top_queryid", "bigint"), ("query", "text"),
    ("comments", "text"), ("planid", "bigint"), ("query_plan", "text"),
    ("top_query", "text"), ("application_name", "text"), ("relations", "text[]"),
    ("cmd_type", "integer"), ("cmd_type_text", "text"), ("elevel", "integer"),
    ("sqlcode", "text"), ("message", "text"), ("calls", "bigint"),
    ("total_exec_time", "double precision"), ("min_exec_time", "double precision"),
    ("max_exec_time", "double precision"), ("mean_exec_time", "double precision"),
    ("stddev_exec_time", "double precision"), ("rows", "bigint"),
    ("shared_blks_hit", "bigint"), ("shared_blks_read", "bigint"),
    ("shared_blks_dirtied", "bigint"), ("shared_blks_written", "bigint"),
    ("local_blks_hit", "bigint"), ("local_blks_read", "bigint"),
    ("local_blks_dirtied", "bigint"), ("local_blks_written", "bigint"),
    ("temp_blks_read", "bigint"), ("temp_blks_written", "bigint"),
    ("blk_read_time", "double precision"), ("blk_write_time", "double precision"),
    ("temp_blk_read_time", "double precision"), ("temp_blk_write_time", "double precision"),
    ("resp_calls", "text[]"), ("cpu_user_time", "double precision"),
    ("cpu_sys_time", "double precision"), ("wal_records", "bigint"), ("wal_fpi", "bigint"),
    ("wal_bytes", "numeric"), ("bucket_done", "boolean"), ("plans", "bigint"),
    ("total_plan_time", "double precision"), ("min_plan_time", "double precision"),
    ("max_plan_time", "double precision"), ("mean_plan_time", "double precision"),
    ("stddev_plan_time", "double precision"), ("jit_functions", "bigint"),
    ("jit_generation_time", "double precision"), ("jit_inlining_count", "bigint"),
    ("jit_inlining_time", "double precision"), ("jit_optimization_count", "bigint"),
    ("jit_optimization_time", "double precision"), ("jit_emission_count", "bigint"),
    ("jit_emission_time", "double precision"),
]


def test_view_has_the_65_upstream_columns_in_order(conn: psycopg.Connection[Any]) -> None:
    """Names, types and order match API.md section 2 exactly."""
    got = rows(
        conn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = 'pg_stat_monitor'::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum",
    )
    assert len(EXPECTED) == 65
    assert got == EXPECTED


def test_version_is_the_full_release(conn: psycopg.Connection[Any]) -> None:
    """pg_stat_monitor_version() returns 2.4.0."""
    assert rows(conn, "SELECT pg_stat_monitor_version()") == [("2.4.0",)]
