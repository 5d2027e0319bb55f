"""Utility statements: recorded inside SQL-language functions and procedures, never normalized
(issue 9, behaviour 5; API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import reset, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

SQL_FUNCTION = (
    "CREATE OR REPLACE FUNCTION live_util_fn() RETURNS void LANGUAGE sql AS $$"
    " CREATE TEMP TABLE IF NOT EXISTS live_util_tmp(a int); SET work_mem = 77; $$")
SQL_PROCEDURE = (
    "CREATE OR REPLACE PROCEDURE live_util_proc() LANGUAGE sql AS $$"
    " SET work_mem = 78; DROP TABLE IF EXISTS live_util_gone; $$")


def test_utility_statements_inside_sql_functions_and_procedures_are_recorded(
        conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track = all, a SQL function's and a SQL procedure's utility statements have
    nested rows (toplevel false, their caller as top query) with the id the same text has at
    top level."""
    conn.execute(SQL_FUNCTION)
    conn.execute(SQL_PROCEDURE)
    reset(conn)
    conn.execute("SET pg_stat_monitor.pgsm_track = 'all'")
    for _ in range(2):
        conn.execute("SELECT live_util_fn()")
        conn.execute("CALL live_util_proc()")
    conn.execute("SET work_mem = 77")
    got = stats(conn, "query IN ('CREATE TEMP TABLE IF NOT EXISTS live_util_tmp(a int)',"
                      " 'SET work_mem = 77', 'SET work_mem = 78',"
                      " 'DROP TABLE IF EXISTS live_util_gone')")
    nested = sorted((r["query"], r["toplevel"], r["calls"], r["cmd_type"], r["top_query"])
                    for r in got if not r["toplevel"])
    assert nested == [
        ("CREATE TEMP TABLE IF NOT EXISTS live_util_tmp(a int)", False, 2, 6,
         "SELECT live_util_fn()"),
        ("DROP TABLE IF EXISTS live_util_gone", False, 2, 6, "CALL live_util_proc()"),
        ("SET work_mem = 77", False, 2, 6, "SELECT live_util_fn()"),
        ("SET work_mem = 78", False, 2, 6, "CALL live_util_proc()"),
    ]
    ids = {(r["query"], r["toplevel"]): r["queryid"] for r in got}
    assert ids[("SET work_mem = 77", False)] == ids[("SET work_mem = 77", True)]


def test_utility_statements_are_never_normalized(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_normalized_query on, DO and CREATE FUNCTION keep their bodies and SET its
    value; statements that differ only in constants have different pgsm_query_ids."""
    conn.execute("SET pg_stat_monitor.pgsm_normalized_query = on")
    statements = [
        "DO $$BEGIN PERFORM 1; END$$",
        "DO $$BEGIN PERFORM 2; END$$",
        "CREATE OR REPLACE FUNCTION live_util_body() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$",
        "SET work_mem = 64",
        "SET work_mem = 128",
    ]
    for sql in statements:
        conn.execute(sql)
    conn.execute("SELECT 1 AS live_util_dml")
    got = {r["query"]: r["pgsm_query_id"] for r in stats(
        conn, "query LIKE 'DO $$%%' OR query LIKE '%%live_util_body%%'"
              " OR query LIKE 'SET work_mem%%' OR query LIKE '%%live_util_dml%%'")}
    assert sorted(got) == sorted(statements + ["SELECT $1 AS live_util_dml"])
    assert len({got[sql] for sql in statements}) == len(statements)


def test_passwords_and_connection_strings_are_never_stored(
        conn: psycopg.Connection[Any]) -> None:
    """CREATE/ALTER ROLE ... PASSWORD, a user mapping's password and a server's options are
    stored with their constants replaced (normalization off), and two passwords make one
    pgsm_query_id."""
    conn.execute("DROP ROLE IF EXISTS live_util_secret")
    reset(conn)
    conn.execute("CREATE ROLE live_util_secret PASSWORD 'hunter2'")
    conn.execute("ALTER ROLE live_util_secret PASSWORD 'hunter3'")
    conn.execute("ALTER ROLE live_util_secret PASSWORD 'hunter4'")
    conn.execute("CREATE FOREIGN DATA WRAPPER live_util_fdw")
    conn.execute("CREATE SERVER live_util_srv FOREIGN DATA WRAPPER live_util_fdw"
                 " OPTIONS (host 'secret.example')")
    conn.execute("CREATE USER MAPPING FOR live_util_secret SERVER live_util_srv"
                 " OPTIONS (password 'hunter5')")
    conn.execute("DROP SERVER live_util_srv CASCADE; DROP FOREIGN DATA WRAPPER live_util_fdw;"
                 " DROP ROLE live_util_secret")
    got = stats(conn, "query ~* '(ROLE|SERVER|MAPPING) live_util'")
    texts = sorted(r["query"] for r in got)
    assert len(texts) >= 5
    assert not [t for t in texts if "hunter" in t or "secret.example" in t]
    alters = {r["pgsm_query_id"] for r in got if r["query"].startswith("ALTER ROLE")}
    assert len(alters) == 1
