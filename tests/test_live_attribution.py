"""Whose statement a row is: the role and application name when it started, names kept after a
DROP, pgsm_track_application_names (issue 9, behaviours 6-8; API.md sections 3 and 5)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory, reset, stats
from pgserver import PgServer

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")


def test_prepared_set_config_counts_under_the_name_it_started_with(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """A prepared set_config('application_name', 'live_attr_set') run under two names makes
    two rows, each under the name in effect when that execution started."""
    sql = "SELECT set_config('application_name', %s, false) AS live_attr_app"
    with server.connect() as c:
        for name in ("live_attr_first", "live_attr_second"):
            c.execute("SELECT set_config('application_name', %s, false)", (name,))
            c.execute(sql, ("live_attr_set",), prepare=True)
    got = stats(conn, "query LIKE %s", "%live_attr_app%")
    assert sorted((r["application_name"], r["calls"]) for r in got) == [
        ("live_attr_first", 1), ("live_attr_second", 1)]


def test_role_of_a_statement_is_the_one_it_started_as(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """set_config('role', ...) counts under the role it started as; SET ROLE, a utility
    statement, under the role it set, as upstream."""
    conn.execute("DROP ROLE IF EXISTS live_attr_role")
    conn.execute("CREATE ROLE live_attr_role")
    reset(conn)
    with server.connect() as c:
        c.execute("SELECT set_config('role', 'live_attr_role', false) AS live_attr_role_fn")
        c.execute("RESET ROLE")
        c.execute("SET ROLE live_attr_role")
    got = {r["query"]: r["username"] for r in stats(
        conn, "query LIKE %s OR query = 'SET ROLE live_attr_role'", "%live_attr_role_fn%")}
    assert got == {
        "SELECT set_config('role', 'live_attr_role', false) AS live_attr_role_fn": "postgres",
        "SET ROLE live_attr_role": "live_attr_role",
    }


def test_track_application_names_off_records_no_application_name(
        conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track_application_names off, statements run under two application names
    make one row whose application_name is NULL, as upstream 2.3."""
    conn.execute("SET pg_stat_monitor.pgsm_track_application_names = off")
    for name in ("live_attr_off_a", "live_attr_off_b"):
        conn.execute("SELECT set_config('application_name', %s, false)", (name,))
        conn.execute("SELECT 1 AS live_attr_off")
    got = stats(conn, "query = 'SELECT 1 AS live_attr_off'")
    assert [(r["application_name"], r["calls"]) for r in got] == [(None, 2)]


def run_as_dropped(server: PgServer) -> None:
    """Run a statement as a new role in a new database, then drop both."""
    with server.connect() as admin:
        admin.execute("CREATE ROLE live_attr_gone LOGIN")
        admin.execute("CREATE DATABASE live_attr_gonedb")
    with server.connect(user="live_attr_gone", dbname="live_attr_gonedb") as c:
        c.execute("SELECT 1 AS live_attr_gone")
    with server.connect() as admin:
        admin.execute("DROP DATABASE live_attr_gonedb")
        admin.execute("DROP ROLE live_attr_gone")


def gone_rows(server: PgServer) -> list[tuple[Any, ...]]:
    """username and datname of the dropped role's statement."""
    with server.connect() as c:
        return [(r["username"], r["datname"], r["calls"])
                for r in stats(c, "query = 'SELECT 1 AS live_attr_gone'")]


def test_rows_of_a_dropped_role_and_database_keep_their_names(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """After DROP DATABASE and DROP ROLE, their row still shows username and datname."""
    run_as_dropped(server)
    assert gone_rows(server) == [("live_attr_gone", "live_attr_gonedb", 1)]


@pytest.mark.slow
def test_names_of_a_dropped_role_and_database_survive_a_restart(
        make_server: ServerFactory) -> None:
    """The kept names are in the dump file: after a clean restart the row still has them."""
    server = make_server()
    run_as_dropped(server)
    server.restart()
    assert gone_rows(server) == [("live_attr_gone", "live_attr_gonedb", 1)]
