"""Planning statistics and plan capture (API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")


def make_table(conn: psycopg.Connection[Any]) -> None:
    """A small table, then a reset."""
    conn.execute("CREATE TABLE IF NOT EXISTS live_plan_t(a int)")
    reset(conn)


def test_track_planning_on_fills_plan_counters(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track_planning on: plans = 1 per planned execution, total_plan_time > 0."""
    make_table(conn)
    conn.execute("SET pg_stat_monitor.pgsm_track_planning = on")
    conn.execute("SELECT count(*) FROM live_plan_t WHERE a > 1")
    conn.execute("SELECT count(*) FROM live_plan_t WHERE a > 2")
    [row] = stats(conn, "query LIKE 'SELECT count(*) FROM live_plan_t%'")
    assert row["calls"] == 2
    assert row["plans"] == 2
    assert row["total_plan_time"] > 0
    assert 0 < row["min_plan_time"] <= row["max_plan_time"] <= row["total_plan_time"]


def test_track_planning_off_leaves_plans_zero(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track_planning off (the default): plans = 0, total_plan_time = 0."""
    make_table(conn)
    conn.execute("SELECT count(*) AS live_plan_off FROM live_plan_t WHERE a > 1")
    [row] = stats(conn, "query LIKE 'SELECT count(*) AS live_plan_off%'")
    assert row["calls"] == 1
    assert (row["plans"], row["total_plan_time"]) == (0, 0)


def test_query_plan_is_captured_when_enabled(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_enable_query_plan on, a SELECT's row has its plan text and a planid."""
    make_table(conn)
    conn.execute("SET pg_stat_monitor.pgsm_enable_query_plan = on")
    conn.execute("SELECT a FROM live_plan_t WHERE a = 5")
    [row] = stats(conn, "query = 'SELECT a FROM live_plan_t WHERE a = 5'")
    assert "Seq Scan on live_plan_t" in row["query_plan"]
    assert row["planid"] is not None


def test_query_plan_is_null_when_disabled(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_enable_query_plan off (the default), query_plan and planid are NULL."""
    make_table(conn)
    conn.execute("SELECT a AS live_noplan FROM live_plan_t WHERE a = 5")
    [row] = stats(conn, "query = 'SELECT a AS live_noplan FROM live_plan_t WHERE a = 5'")
    assert (row["query_plan"], row["planid"]) == (None, None)


def test_different_plans_of_one_query_are_separate_rows(conn: psycopg.Connection[Any]) -> None:
    """planid is part of the key: one query run with two plans gives two rows."""
    conn.execute("CREATE TABLE IF NOT EXISTS live_plan_idx(a int PRIMARY KEY)")
    reset(conn)
    conn.execute("SET pg_stat_monitor.pgsm_enable_query_plan = on")
    sql = "SELECT a FROM live_plan_idx WHERE a = 7"
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    conn.execute(sql)
    conn.execute("RESET enable_indexscan")
    conn.execute("RESET enable_bitmapscan")
    conn.execute("SET enable_seqscan = off")
    conn.execute(sql)
    got = stats(conn, "query = %s", sql)
    assert len(got) == 2
    assert len({r["queryid"] for r in got}) == 1
    assert len({r["planid"] for r in got}) == 2
    plans = sorted(r["query_plan"].split("\n")[0] for r in got)
    assert plans[0].startswith("Index")
    assert plans[1].startswith("Seq Scan on live_plan_idx")
