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


def test_error_row_gets_its_pgsm_query_id_at_its_first_run(
        conn: psycopg.Connection[Any]) -> None:
    """A row made by an ERROR has no pgsm_query_id (no scanning inside error reports) until the
    statement first runs without error; then it has one."""
    error_of(conn, "SELECT 1/0 AS live_err_id")
    [before] = stats(conn, "query LIKE %s", "%live_err_id")
    conn.execute("SELECT 1/1 AS live_err_id")
    [after] = stats(conn, "query LIKE %s", "%live_err_id")
    assert (before["elevel"], before["pgsm_query_id"]) == (21, None)
    assert after["calls"] == 2
    assert after["pgsm_query_id"] is not None


def test_error_at_commit_is_not_a_second_call(conn: psycopg.Connection[Any]) -> None:
    """A deferred foreign key failing at commit marks the INSERT's row without counting it twice."""
    conn.execute("CREATE TABLE live_fk_p (id int PRIMARY KEY)")
    conn.execute("CREATE TABLE live_fk_c (id int REFERENCES live_fk_p"
                 " DEFERRABLE INITIALLY DEFERRED)")
    reset(conn)
    error_of(conn, "INSERT INTO live_fk_c VALUES (42)")
    [row] = stats(conn, "query = 'INSERT INTO live_fk_c VALUES (42)'")
    assert row["calls"] == 1
    assert (row["elevel"], row["sqlcode"]) == (21, "23503")


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


def test_error_row_text_is_normalized_at_its_first_run(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_normalized_query on, a row made by an ERROR shows $n once the statement runs."""
    conn.execute("SET pg_stat_monitor.pgsm_normalized_query = on")
    error_of(conn, "SELECT 1/0 AS live_norm_err")
    conn.execute("SELECT 1/1 AS live_norm_err")
    [row] = stats(conn, "query LIKE %s", "%live_norm_err")
    assert row["elevel"] == 21
    assert row["query"] == "SELECT $1/$2 AS live_norm_err"
