"""The pg_stat_monitor view keeps upstream's 65 columns, names, types and order, as the table
of API.md section 2 lists them; the row type, the readers and history share them."""

from __future__ import annotations

from typing import Any

import psycopg

from api_md import api_columns, api_names
from fixtures import rows

ATTRIBUTES = (
    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
    " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


def expected(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """API.md's columns with their types as format_type() names them (timestamptz: ...)."""
    return [(name, one_type(conn, type_)) for name, type_ in api_columns()]


def one_type(conn: psycopg.Connection[Any], type_: str) -> str:
    """The canonical name of a type."""
    [(canonical,)] = rows(conn, "SELECT format_type(%s::regtype, NULL)", type_)
    return str(canonical)


def test_view_has_the_65_upstream_columns_in_order(conn: psycopg.Connection[Any]) -> None:
    """Names, types and order of the view match API.md section 2 exactly."""
    assert rows(conn, ATTRIBUTES, "pg_stat_monitor") == expected(conn)


def test_row_type_and_reader_have_the_view_columns(conn: psycopg.Connection[Any]) -> None:
    """pgsm_internal.pgsm_row and pg_stat_monitor_internal() return exactly those columns."""
    reader = rows(conn, "SELECT * FROM pg_stat_monitor_internal(true) LIMIT 0")
    cur = conn.execute("SELECT * FROM pg_stat_monitor_internal(true) LIMIT 0")
    assert reader == []
    assert cur.description is not None
    assert [c.name for c in cur.description] == api_names()
    assert rows(conn, ATTRIBUTES, "pgsm_internal.pgsm_row") == expected(conn)


def test_history_is_the_row_plus_the_export_time(conn: psycopg.Connection[Any]) -> None:
    """pg_stat_monitor_history has the 65 columns, then exported_at timestamptz."""
    got = rows(conn, ATTRIBUTES, "pg_stat_monitor_history")
    assert got == expected(conn) + [("exported_at", "timestamp with time zone")]


def test_version_is_the_full_release(conn: psycopg.Connection[Any]) -> None:
    """pg_stat_monitor_version() returns 2.4.0."""
    assert rows(conn, "SELECT pg_stat_monitor_version()") == [("2.4.0",)]
