"""Errors and warnings: elevel, sqlcode and message on the statement's row (API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import error_of, one, reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

WARN_FUNCTION = (
    "CREATE OR REPLACE FUNCTION live_warn() RETURNS int LANGUAGE plpgsql AS $$"
    " BEGIN RAISE WARNING 'careful'; RETURN 1; END $$")


def test_division_by_zero_is_recorded_as_an_error(conn: psycopg.Connection[Any]) -> None:
    """SELECT 1/0: elevel 21 (ERROR), sqlcode 22012, message 'division by zero'."""
    err = error_of(conn, "SELECT 1/0")
    assert err.sqlstate == "22012"
    [row] = stats(conn, "query = 'SELECT 1/0'")
    assert row["elevel"] == 21
    assert row["sqlcode"] == "22012"
    assert row["message"] == "division by zero"
    assert row["toplevel"] is True
    assert one(conn, "SELECT decode_error_level(21)") == "ERROR"


def test_statements_without_diagnostics_have_elevel_0(conn: psycopg.Connection[Any]) -> None:
    """A statement that succeeds quietly: elevel 0, sqlcode and message NULL."""
    conn.execute("SELECT 1 AS live_quiet")
    [row] = stats(conn, "query = 'SELECT 1 AS live_quiet'")
    assert (row["elevel"], row["sqlcode"], row["message"]) == (0, None, None)


def test_warning_marks_the_statements_row(conn: psycopg.Connection[Any]) -> None:
    """A SELECT whose function raises WARNING: one row, calls 1, elevel 19, sqlcode 01000."""
    conn.execute(WARN_FUNCTION)
    reset(conn)
    conn.execute("SELECT live_warn() AS live_warn_row")
    [row] = stats(conn, "query = 'SELECT live_warn() AS live_warn_row'")
    assert row["calls"] == 1
    assert row["rows"] == 1
    assert row["elevel"] == 19
    assert row["sqlcode"] == "01000"
    assert row["message"] == "careful"
    assert one(conn, "SELECT decode_error_level(19)") == "WARNING"


def test_warning_row_keeps_its_command_type(conn: psycopg.Connection[Any]) -> None:
    """The row of a SELECT that raised a WARNING is still a SELECT row (cmd_type 1)."""
    conn.execute(WARN_FUNCTION)
    reset(conn)
    conn.execute("SELECT live_warn() AS live_warn_cmd")
    [row] = stats(conn, "query = 'SELECT live_warn() AS live_warn_cmd'")
    assert row["elevel"] == 19
    assert (row["cmd_type"], row["cmd_type_text"]) == (1, "SELECT")


def test_warning_row_has_a_pgsm_query_id(conn: psycopg.Connection[Any]) -> None:
    """The row of a SELECT that raised a WARNING has a pgsm_query_id (on by default)."""
    conn.execute(WARN_FUNCTION)
    reset(conn)
    conn.execute("SELECT live_warn() AS live_warn_id")
    [row] = stats(conn, "query = 'SELECT live_warn() AS live_warn_id'")
    assert row["elevel"] == 19
    assert row["pgsm_query_id"] is not None


def test_raise_warning_in_do_block_marks_its_utility_row(conn: psycopg.Connection[Any]) -> None:
    """A DO block raising WARNING: its one row is a UTILITY row with elevel 19."""
    sql = "DO $$ BEGIN RAISE WARNING 'live do warning'; END $$"
    conn.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert row["calls"] == 1
    assert (row["elevel"], row["sqlcode"], row["message"]) == (19, "01000", "live do warning")
    assert (row["cmd_type"], row["cmd_type_text"]) == (6, "UTILITY")


def test_error_row_has_a_pgsm_query_id(conn: psycopg.Connection[Any]) -> None:
    """pgsm_query_id (on by default) is filled for a statement that ended in ERROR too."""
    error_of(conn, "SELECT 1/0 AS live_err_id")
    [row] = stats(conn, "query = 'SELECT 1/0 AS live_err_id'")
    assert row["elevel"] == 21
    assert row["pgsm_query_id"] is not None


def test_statement_that_failed_once_keeps_its_command_type(
        conn: psycopg.Connection[Any]) -> None:
    """A SELECT that failed once and then succeeded: one row, calls 2, still a SELECT row."""
    conn.execute(
        "CREATE OR REPLACE FUNCTION live_inverse(x int) RETURNS int LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN 1 / x; END $$")
    reset(conn)
    error_of(conn, "SELECT live_inverse(0) AS live_inv")
    conn.execute("SELECT live_inverse(1) AS live_inv")
    [row] = stats(conn, "query LIKE %s", "%AS live_inv")
    assert row["calls"] == 2
    assert (row["elevel"], row["sqlcode"]) == (21, "22012")
    assert (row["cmd_type"], row["cmd_type_text"]) == (1, "SELECT")


def test_error_row_text_is_normalized_when_enabled(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_normalized_query on, a failed statement's text shows $n, not its constants."""
    conn.execute("SET pg_stat_monitor.pgsm_normalized_query = on")
    error_of(conn, "SELECT 1/0 AS live_norm_err")
    [row] = stats(conn, "query LIKE %s", "%live_norm_err")
    assert row["elevel"] == 21
    assert row["query"] == "SELECT $1/$2 AS live_norm_err"
