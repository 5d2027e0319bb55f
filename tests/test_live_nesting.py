"""pgsm_track: nested statements with 'all', only top-level ones with 'top' (API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")


def make_function(conn: psycopg.Connection[Any], tag: str) -> tuple[str, str]:
    """A table and a plpgsql function reading it, then a reset; the calling SQL and a filter.

    Each test has its own table, so rows of other tests never match its filter.
    """
    conn.execute(f"CREATE TABLE IF NOT EXISTS live_nest_{tag}_t(a int)")
    conn.execute(
        f"CREATE OR REPLACE FUNCTION live_nest_{tag}() RETURNS bigint LANGUAGE plpgsql AS $$"
        f" DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM live_nest_{tag}_t; RETURN n;"
        " END $$")
    reset(conn)
    nested = f"query LIKE '%FROM live_nest_{tag}_t%' AND query NOT LIKE 'CREATE%'"
    return f"SELECT live_nest_{tag}() AS nested_call", nested


def test_track_all_records_nested_statements_with_their_top(
        conn: psycopg.Connection[Any]) -> None:
    """With 'all', a statement inside a function: toplevel false, top_queryid and top_query."""
    top_sql, nested_filter = make_function(conn, "all")
    conn.execute("SET pg_stat_monitor.pgsm_track = 'all'")
    conn.execute(top_sql)
    conn.execute(top_sql)
    [top] = stats(conn, "query = %s", top_sql)
    assert top["toplevel"] is True
    assert top["top_queryid"] is None
    assert top["calls"] == 2
    [nested] = stats(conn, nested_filter)
    assert nested["toplevel"] is False
    assert nested["calls"] == 2
    assert nested["top_queryid"] == top["queryid"]
    assert nested["top_query"] == top_sql
    assert nested["cmd_type"] == 1
    assert nested["relations"] == ["public.live_nest_all_t"]


def test_same_statement_top_level_and_nested_gives_two_rows(
        conn: psycopg.Connection[Any]) -> None:
    """toplevel is part of the key: a statement run directly and inside a function: two rows."""
    top_sql, nested_filter = make_function(conn, "both")
    conn.execute("SET pg_stat_monitor.pgsm_track = 'all'")
    conn.execute(top_sql)
    conn.execute("SELECT count(*) FROM live_nest_both_t")
    got = stats(conn, nested_filter)
    assert len(got) == 2
    assert len({r["queryid"] for r in got}) == 1
    assert sorted((r["toplevel"], r["top_query"]) for r in got) == [
        (False, top_sql), (True, None)]


def test_track_top_records_only_top_level_statements(conn: psycopg.Connection[Any]) -> None:
    """With 'top' (the default), statements inside a function are not recorded."""
    top_sql, nested_filter = make_function(conn, "top")
    conn.execute("SET pg_stat_monitor.pgsm_track = 'top'")
    conn.execute(top_sql)
    [top] = stats(conn, "query = %s", top_sql)
    assert (top["toplevel"], top["calls"]) == (True, 1)
    assert stats(conn, nested_filter) == []


def test_track_none_records_nothing(conn: psycopg.Connection[Any]) -> None:
    """With 'none', neither the statement nor its nested statements are recorded."""
    top_sql, nested_filter = make_function(conn, "none")
    conn.execute("SET pg_stat_monitor.pgsm_track = 'none'")
    conn.execute(top_sql)
    conn.execute("SET pg_stat_monitor.pgsm_track = 'top'")
    assert stats(conn, "query = %s", top_sql) == []
    assert stats(conn, nested_filter) == []


def test_statement_run_while_planning_has_its_own_top_query(
        conn: psycopg.Connection[Any]) -> None:
    """A function folded by the planner: its statement's top_query is the statement planned,
    not the previous one (whose text is gone by then)."""
    conn.execute("CREATE OR REPLACE FUNCTION live_fold(x int) RETURNS int LANGUAGE plpgsql"
                 " IMMUTABLE AS $$ DECLARE r int; BEGIN SELECT x + 1 INTO r; RETURN r; END $$")
    conn.execute("SET pg_stat_monitor.pgsm_track = 'all'")
    conn.execute("SELECT 1 /* " + "x" * 400_000 + " */ AS live_big")
    conn.execute("SELECT live_fold(1) AS live_folded")
    rows = conn.execute("SELECT top_query FROM pg_stat_monitor WHERE NOT toplevel"
                        " AND query LIKE 'SELECT x + 1%'").fetchall()
    assert rows == [("SELECT live_fold(1) AS live_folded",)]
