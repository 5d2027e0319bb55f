"""Who sees what, and who may reset (API.md section 3, Privileges)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fixtures import error_of, reset, stats
from pgserver import PgServer

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

PLAIN = "live_priv_plain"
READER = "live_priv_reader"


@pytest.fixture(scope="module")
def roles(server: PgServer) -> Iterator[None]:
    """A plain login role and a login role that is a member of pg_read_all_stats."""
    for role in (PLAIN, READER):
        server.sql(f"DROP ROLE IF EXISTS {role}")
        server.sql(f"CREATE ROLE {role} LOGIN")
    server.sql(f"GRANT pg_read_all_stats TO {READER}")
    yield
    for role in (PLAIN, READER):
        server.sql(f"DROP ROLE IF EXISTS {role}")


def superuser_statement(conn: psycopg.Connection[Any], server: PgServer, sql: str) -> int:
    """Run a statement as the superuser over TCP (so it has a client_ip); its queryid.

    Each test reads a different catalog, so its statement has a queryid of its own.
    """
    reset(conn)
    with server.connect(host="127.0.0.1") as tcp:
        tcp.execute("SET pg_stat_monitor.pgsm_enable_query_plan = on")
        tcp.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert str(row["client_ip"]) == "127.0.0.1"
    assert row["query_plan"] == "Aggregate\n  ->  Seq Scan on " + sql.split()[-1]
    return int(row["queryid"])


def test_plain_role_sees_counters_but_not_texts_of_other_roles(
        conn: psycopg.Connection[Any], server: PgServer, roles: None) -> None:
    """Another role's row: texts '<insufficient privilege>', client_ip NULL, calls visible."""
    queryid = superuser_statement(conn, server, "SELECT count(*) FROM pg_namespace")
    with server.connect(user=PLAIN, host="127.0.0.1") as plain:
        plain.execute("SELECT 2 AS live_priv_own")
        [theirs] = stats(plain, "queryid = %s AND username = 'postgres'", queryid)
        [own] = stats(plain, "username = %s AND query LIKE '%%live_priv_own'", PLAIN)
    assert theirs["query"] == "<insufficient privilege>"
    assert theirs["query_plan"] == "<insufficient privilege>"
    assert theirs["client_ip"] is None
    assert theirs["calls"] == 1
    assert theirs["rows"] == 1
    assert own["query"] == "SELECT 2 AS live_priv_own"
    assert str(own["client_ip"]) == "127.0.0.1"


def test_pg_read_all_stats_member_sees_texts(
        conn: psycopg.Connection[Any], server: PgServer, roles: None) -> None:
    """A member of pg_read_all_stats sees other roles' query text and client_ip."""
    sql = "SELECT count(*) FROM pg_language"
    queryid = superuser_statement(conn, server, sql)
    with server.connect(user=READER) as reader:
        [theirs] = stats(reader, "queryid = %s AND username = 'postgres'", queryid)
    assert theirs["query"] == sql
    assert theirs["query_plan"] == "Aggregate\n  ->  Seq Scan on pg_language"
    assert str(theirs["client_ip"]) == "127.0.0.1"
    assert theirs["calls"] == 1


def test_reset_is_denied_to_a_plain_role(
        conn: psycopg.Connection[Any], server: PgServer, roles: None) -> None:
    """pg_stat_monitor_reset() by a plain role fails with 42501 and resets nothing."""
    conn.execute("SELECT 1 AS live_priv_keep")
    with server.connect(user=PLAIN) as plain:
        err = error_of(plain, "SELECT pg_stat_monitor_reset()")
    assert err.sqlstate == "42501"
    assert len(stats(conn, "query = 'SELECT 1 AS live_priv_keep'")) == 1


def test_reset_removes_the_live_rows(conn: psycopg.Connection[Any]) -> None:
    """After pg_stat_monitor_reset() the rows of statements run before it are gone."""
    conn.execute("SELECT 1 AS live_priv_gone")
    assert len(stats(conn, "query = 'SELECT 1 AS live_priv_gone'")) == 1
    reset(conn)
    assert stats(conn, "query = 'SELECT 1 AS live_priv_gone'") == []
    assert len(stats(conn, "query = 'SELECT pg_stat_monitor_reset()'")) == 1
