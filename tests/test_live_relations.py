"""relations: the tables and views a statement used, as schema.name (API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")


def make_relations(conn: psycopg.Connection[Any]) -> None:
    """Two tables and a view over one of them, then a reset."""
    conn.execute("DROP VIEW IF EXISTS live_rel_v")
    conn.execute("DROP TABLE IF EXISTS live_rel_a, live_rel_b")
    conn.execute("CREATE TABLE live_rel_a(id int, x int)")
    conn.execute("CREATE TABLE live_rel_b(id int, y int)")
    conn.execute("CREATE VIEW live_rel_v AS SELECT id, x FROM live_rel_a")
    reset(conn)


def test_join_lists_both_tables(conn: psycopg.Connection[Any]) -> None:
    """A join of two tables lists both as public.name."""
    make_relations(conn)
    sql = "SELECT a.x, b.y FROM live_rel_a a JOIN live_rel_b b ON a.id = b.id"
    conn.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert sorted(row["relations"]) == ["public.live_rel_a", "public.live_rel_b"]


def test_view_is_marked_with_a_star(conn: psycopg.Connection[Any]) -> None:
    """A SELECT from a view lists the view with a trailing '*' (and the table under it)."""
    make_relations(conn)
    conn.execute("SELECT * FROM live_rel_v")
    [row] = stats(conn, "query = 'SELECT * FROM live_rel_v'")
    assert sorted(row["relations"]) == ["public.live_rel_a", "public.live_rel_v*"]


def test_statement_without_relations_has_null_relations(conn: psycopg.Connection[Any]) -> None:
    """A SELECT that reads no relation has relations NULL."""
    conn.execute("SELECT 1 AS live_norel")
    [row] = stats(conn, "query = 'SELECT 1 AS live_norel'")
    assert row["relations"] is None


def test_twelve_relations_are_all_listed(conn: psycopg.Connection[Any]) -> None:
    """No upstream limit of 10: a join of 12 tables lists all 12."""
    names = [f"live_rel_many_{i:02d}" for i in range(12)]
    for name in names:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {name}(id int)")
    reset(conn)
    sql = "SELECT count(*) AS live_rel_many FROM " + ", ".join(names)
    conn.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert sorted(row["relations"]) == [f"public.{name}" for name in names]
