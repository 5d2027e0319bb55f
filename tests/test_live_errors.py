"""Errors and warnings: rows of their own with elevel, sqlcode, message and a pgsm_query_id
(API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import error_of, one, reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

def by_elevel(conn: psycopg.Connection[Any], where: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of the view matching a condition, the statement's row before its error rows."""
    return sorted(stats(conn, where, *params), key=lambda r: int(r["elevel"]))


WARN_FUNCTION = (
    "CREATE OR REPLACE FUNCTION live_warn() RETURNS int LANGUAGE plpgsql AS $$"
    " BEGIN RAISE WARNING 'careful'; RETURN 1; END $$")


def test_division_by_zero_is_recorded_as_an_error(conn: psycopg.Connection[Any]) -> None:
    """SELECT 1/0: elevel 21 (ERROR), sqlcode 22012, message 'division by zero', calls 1."""
    err = error_of(conn, "SELECT 1/0")
    assert err.sqlstate == "22012"
    [row] = stats(conn, "query = 'SELECT 1/0'")
    assert row["elevel"] == 21
    assert row["sqlcode"] == "22012"
    assert row["message"] == "division by zero"
    assert row["calls"] == 1
    assert row["toplevel"] is True
    assert one(conn, "SELECT decode_error_level(21)") == "ERROR"


def test_failed_runs_have_a_row_apart_from_successful_ones(
        conn: psycopg.Connection[Any]) -> None:
    """select 10/2 x3 and select 10/0 x3: two rows of one queryid, calls 3 and 3, elevel 0 and
    21, each with a pgsm_query_id of its own."""
    for _ in range(3):
        conn.execute("select 10/2 AS live_split")
        error_of(conn, "select 10/0 AS live_split")
    got = by_elevel(conn, "query LIKE %s", "select 10/% AS live_split")
    assert [(r["calls"], r["elevel"], r["sqlcode"]) for r in got] == [
        (3, 0, None), (3, 21, "22012")]
    assert [r["query"] for r in got] == ["select 10/2 AS live_split", "select 10/0 AS live_split"]
    assert got[0]["queryid"] == got[1]["queryid"]
    assert None not in (got[0]["pgsm_query_id"], got[1]["pgsm_query_id"])
    assert got[0]["pgsm_query_id"] != got[1]["pgsm_query_id"]


def test_statements_without_diagnostics_have_elevel_0(conn: psycopg.Connection[Any]) -> None:
    """A statement that succeeds quietly: elevel 0, sqlcode and message NULL."""
    conn.execute("SELECT 1 AS live_quiet")
    [row] = stats(conn, "query = 'SELECT 1 AS live_quiet'")
    assert (row["elevel"], row["sqlcode"], row["message"]) == (0, None, None)


def test_warning_has_a_row_of_its_own(conn: psycopg.Connection[Any]) -> None:
    """A SELECT whose function raises WARNING, as upstream: its run in its own row (calls 1,
    elevel 0) and the warning in another (calls 1, elevel 19, sqlcode 01000, its message)."""
    conn.execute(WARN_FUNCTION)
    reset(conn)
    conn.execute("SELECT live_warn() AS live_warn_row")
    got = by_elevel(conn, "query = 'SELECT live_warn() AS live_warn_row'")
    assert [(r["calls"], r["rows"], r["elevel"], r["sqlcode"], r["message"]) for r in got] == [
        (1, 1, 0, None, None), (1, 0, 19, "01000", "careful")]
    assert one(conn, "SELECT decode_error_level(19)") == "WARNING"


def test_warning_row_keeps_its_command_type(conn: psycopg.Connection[Any]) -> None:
    """The warning row of a SELECT is a SELECT row (cmd_type 1)."""
    conn.execute(WARN_FUNCTION)
    reset(conn)
    conn.execute("SELECT live_warn() AS live_warn_cmd")
    [row] = stats(conn, "query = 'SELECT live_warn() AS live_warn_cmd' AND elevel = 19")
    assert (row["cmd_type"], row["cmd_type_text"]) == (1, "SELECT")


def test_warning_row_has_a_pgsm_query_id(conn: psycopg.Connection[Any]) -> None:
    """The warning row has a pgsm_query_id (on by default), not the statement row's."""
    conn.execute(WARN_FUNCTION)
    reset(conn)
    conn.execute("SELECT live_warn() AS live_warn_id")
    got = by_elevel(conn, "query = 'SELECT live_warn() AS live_warn_id'")
    assert [r["elevel"] for r in got] == [0, 19]
    assert got[1]["pgsm_query_id"] is not None
    assert got[1]["pgsm_query_id"] != got[0]["pgsm_query_id"]


def test_raise_warning_in_do_block_has_a_utility_warning_row(
        conn: psycopg.Connection[Any]) -> None:
    """A DO block raising WARNING: its UTILITY row (elevel 0) and a UTILITY warning row."""
    sql = "DO $$ BEGIN RAISE WARNING 'live do warning'; END $$"
    conn.execute(sql)
    got = by_elevel(conn, "query = %s", sql)
    assert [(r["calls"], r["elevel"], r["sqlcode"], r["message"], r["cmd_type_text"])
            for r in got] == [(1, 0, None, None, "UTILITY"),
                              (1, 19, "01000", "live do warning", "UTILITY")]


def test_error_row_has_its_pgsm_query_id_at_once(conn: psycopg.Connection[Any]) -> None:
    """A row made by an ERROR has a pgsm_query_id at once, before any successful run."""
    error_of(conn, "SELECT 1/0 AS live_err_id")
    [row] = stats(conn, "query LIKE %s", "%live_err_id")
    assert (row["elevel"], row["calls"]) == (21, 1)
    assert row["pgsm_query_id"] is not None


def test_error_row_pgsm_query_id_is_the_same_for_other_constants(
        conn: psycopg.Connection[Any]) -> None:
    """Errors of one statement with other constants: one row, one pgsm_query_id, in every
    bucket (the text is scanned as a normal run's is)."""
    error_of(conn, "SELECT 1/0 AS live_err_same")
    [first] = stats(conn, "query LIKE %s", "%live_err_same")
    reset(conn)
    error_of(conn, "SELECT 2/0 AS live_err_same")
    error_of(conn, "SELECT 3/0 AS live_err_same")
    [second] = stats(conn, "query LIKE %s", "%live_err_same")
    assert second["calls"] == 2
    assert second["query"] == "SELECT 2/0 AS live_err_same"
    assert second["pgsm_query_id"] == first["pgsm_query_id"]


def test_unreadable_statement_gets_an_error_row_with_a_pgsm_query_id(
        conn: psycopg.Connection[Any]) -> None:
    """A statement the SQL scanner cannot read (an unterminated literal) after a successful one
    on the same connection: an error row of its raw text, sqlcode 42601, a pgsm_query_id."""
    conn.execute("SELECT 1 AS live_before_unreadable")
    sql = "SELECT 'live_unterminated"
    assert error_of(conn, sql).sqlstate == "42601"
    [row] = stats(conn, "query = %s", sql)
    assert (row["calls"], row["elevel"], row["sqlcode"]) == (1, 21, "42601")
    assert row["pgsm_query_id"] is not None


def test_error_after_a_setting_change_keeps_its_raw_text(
        conn: psycopg.Connection[Any]) -> None:
    """A text with a backslash, parsed before standard_conforming_strings changed in the same
    query string: its error row keeps the raw text and has a pgsm_query_id."""
    sql = ("SET standard_conforming_strings = off; "
           "SELECT 1/0 AS live_scs, 'a\\' AS b; SELECT 1")
    error_of(conn, sql)
    conn.execute("RESET standard_conforming_strings")
    [row] = stats(conn, "query = %s", sql)
    assert (row["calls"], row["elevel"], row["sqlcode"]) == (1, 21, "22012")
    assert row["pgsm_query_id"] is not None


def test_error_at_commit_is_not_a_second_call(conn: psycopg.Connection[Any]) -> None:
    """A deferred foreign key failing at commit: the INSERT's row counts its call; the error row
    (an INSERT row, elevel 21, sqlcode 23503) counts no second one."""
    conn.execute("CREATE TABLE live_fk_p (id int PRIMARY KEY)")
    conn.execute("CREATE TABLE live_fk_c (id int REFERENCES live_fk_p"
                 " DEFERRABLE INITIALLY DEFERRED)")
    reset(conn)
    error_of(conn, "INSERT INTO live_fk_c VALUES (42)")
    got = by_elevel(conn, "query = 'INSERT INTO live_fk_c VALUES (42)'")
    assert [(r["calls"], r["elevel"], r["sqlcode"], r["cmd_type_text"]) for r in got] == [
        (1, 0, None, "INSERT"), (0, 21, "23503", "INSERT")]


def test_failed_and_successful_runs_keep_their_command_type(
        conn: psycopg.Connection[Any]) -> None:
    """A SELECT that failed once and then succeeded: an error row and a row of its run, both
    SELECT rows of calls 1."""
    conn.execute(
        "CREATE OR REPLACE FUNCTION live_inverse(x int) RETURNS int LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN 1 / x; END $$")
    reset(conn)
    error_of(conn, "SELECT live_inverse(0) AS live_inv")
    conn.execute("SELECT live_inverse(1) AS live_inv")
    got = by_elevel(conn, "query LIKE %s", "%AS live_inv")
    assert [(r["calls"], r["elevel"], r["sqlcode"], r["cmd_type"], r["cmd_type_text"])
            for r in got] == [(1, 0, None, 1, "SELECT"), (1, 21, "22012", 1, "SELECT")]


def test_error_row_text_is_normalized_at_once(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_normalized_query on, a row made by an ERROR shows $n at once."""
    conn.execute("SET pg_stat_monitor.pgsm_normalized_query = on")
    error_of(conn, "SELECT 1/0 AS live_norm_err")
    [row] = stats(conn, "query LIKE %s", "%live_norm_err")
    assert row["elevel"] == 21
    assert row["query"] == "SELECT $1/$2 AS live_norm_err"
