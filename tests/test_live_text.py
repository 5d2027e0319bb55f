"""Query text, pgsm_query_id and comments on a real server (API.md section 3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fixtures import rows, stats
from pgserver import PgServer

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

OTHER_DB = "live_text_db2"


def test_query_is_the_first_text_seen_with_literals(conn: psycopg.Connection[Any]) -> None:
    """By default the row keeps the first text seen, constants included."""
    conn.execute("SELECT 10 + 20 AS live_raw")
    conn.execute("SELECT 30 + 40 AS live_raw")
    [row] = stats(conn, "query LIKE %s", "%live_raw%")
    assert row["query"] == "SELECT 10 + 20 AS live_raw"
    assert row["calls"] == 2


def test_normalized_query_replaces_constants(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_normalized_query on, constants are shown as $1, $2, ..."""
    conn.execute("SET pg_stat_monitor.pgsm_normalized_query = on")
    conn.execute("SELECT 10 + 20 AS live_norm, 'x' AS s")
    conn.execute("SELECT 30 + 40 AS live_norm, 'y' AS s")
    [row] = stats(conn, "query LIKE %s", "%live_norm%")
    assert row["query"] == "SELECT $1 + $2 AS live_norm, $3 AS s"
    assert row["calls"] == 2


def test_queryid_is_the_core_query_jumble(conn: psycopg.Connection[Any]) -> None:
    """The row's queryid is the core jumble, as EXPLAIN VERBOSE's Query Identifier shows it."""
    sql = "SELECT relname AS live_jumble FROM pg_class WHERE oid = 1259"
    plan = [r[0] for r in rows(conn, f"EXPLAIN (VERBOSE, COSTS OFF) {sql}")]
    ids = [line.split(":")[1].strip() for line in plan if line.startswith("Query Identifier:")]
    assert len(ids) == 1, plan
    conn.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert row["queryid"] == int(ids[0])


@pytest.fixture(scope="module")
def other_db(server: PgServer) -> Iterator[str]:
    """A second database on the shared server, without the extension."""
    server.sql(f"DROP DATABASE IF EXISTS {OTHER_DB}")
    server.sql(f"CREATE DATABASE {OTHER_DB}")
    yield OTHER_DB
    server.sql(f"DROP DATABASE IF EXISTS {OTHER_DB} WITH (FORCE)")


def test_pgsm_query_id_is_the_same_in_two_databases(
        conn: psycopg.Connection[Any], server: PgServer, other_db: str) -> None:
    """The same SQL run in two databases: two rows with one pgsm_query_id."""
    sql = "SELECT count(*) AS live_xdb FROM pg_class WHERE relkind = 'r'"
    conn.execute(sql)
    with server.connect(dbname=other_db) as other:
        other.execute(sql)
    got = stats(conn, "query = %s", sql)
    assert sorted(r["datname"] for r in got) == [other_db, "postgres"]
    assert got[0]["dbid"] != got[1]["dbid"]
    assert got[0]["pgsm_query_id"] is not None
    assert got[0]["pgsm_query_id"] == got[1]["pgsm_query_id"]


def test_pgsm_query_id_ignores_white_space_case_constants_and_comments(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """Spellings of one statement share a pgsm_query_id; a different statement has another."""
    spellings = {
        "live_ws_1": "SELECT count(*) FROM pg_class WHERE relname = 'a' AND relpages > 1",
        "live_ws_2": "select   count( * )\n  from pg_class /* why */ where relname = 'b'"
                     "   and relpages > 2  -- trailing",
        "live_ws_3": "/* lead */ SELECT count(*)\tFROM pg_class"
                     " WHERE relname = 'c' AND relpages > 3",
    }
    other = "SELECT count(*) FROM pg_attribute WHERE attname = 'a' AND attnum > 1"
    for app, sql in spellings.items():
        with server.connect(application_name=app) as c:
            c.execute(sql)
    conn.execute(other)
    got = stats(conn, "application_name LIKE %s", "live_ws_%")
    assert sorted(r["application_name"] for r in got) == sorted(spellings)
    assert len({r["queryid"] for r in got}) == 1
    ids = {r["pgsm_query_id"] for r in got}
    assert len(ids) == 1
    assert None not in ids
    [different] = stats(conn, "query = %s", other)
    assert different["pgsm_query_id"] is not None
    assert different["pgsm_query_id"] not in ids


def test_pgsm_query_id_is_null_when_disabled(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_enable_pgsm_query_id off, new rows have a NULL pgsm_query_id."""
    conn.execute("SET pg_stat_monitor.pgsm_enable_pgsm_query_id = off")
    conn.execute("SELECT 1 AS live_noid")
    [row] = stats(conn, "query = 'SELECT 1 AS live_noid'")
    assert row["pgsm_query_id"] is None
    assert row["calls"] == 1


def test_comments_are_extracted_when_enabled(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_extract_comments on, the statement's /* */ comment is in comments."""
    conn.execute("SET pg_stat_monitor.pgsm_extract_comments = on")
    conn.execute("SELECT /* app:x */ 1 AS live_comment")
    [row] = stats(conn, "query LIKE %s", "%live_comment%")
    assert row["comments"] == "/* app:x */"
    assert row["query"] == "SELECT /* app:x */ 1 AS live_comment"


def test_comments_are_null_when_disabled(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_extract_comments off (the default), comments is NULL."""
    conn.execute("SELECT /* app:x */ 1 AS live_nocomment")
    [row] = stats(conn, "query LIKE %s", "%live_nocomment%")
    assert row["comments"] is None


def test_long_query_is_cut_at_1536_bytes_on_a_character_boundary(
        conn: psycopg.Connection[Any]) -> None:
    """9 bytes then 2-byte characters: the kept text is 1535 bytes, never half a character."""
    sql = "SELECT 'x" + "\u00e9" * 1000 + "' AS live_long"
    conn.execute(sql)
    [row] = stats(conn, "query LIKE %s", "SELECT 'x\u00e9\u00e9%")
    assert row["calls"] == 1
    assert sql.startswith(row["query"])
    assert len(row["query"].encode()) == 1535


def test_statements_of_one_query_string_get_their_own_text(
        conn: psycopg.Connection[Any]) -> None:
    """A string of two statements gives two rows, each with its own statement's text."""
    conn.execute("SELECT 1 AS live_multi_a;  SELECT 2, 3 AS live_multi_b;")
    got = stats(conn, "query LIKE %s", "%live_multi%")
    assert sorted(r["query"] for r in got) == [
        "SELECT 1 AS live_multi_a", "SELECT 2, 3 AS live_multi_b"]
