"""application_name and client_ip are part of a row's identity (API.md section 3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import stats
from pgserver import PgServer

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")


def test_application_names_make_separate_rows(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """The same statement from two application names gives one row per name."""
    for app in ("live_app_one", "live_app_two"):
        with server.connect(application_name=app) as c:
            c.execute("SELECT 1 AS live_app")
    got = stats(conn, "query = 'SELECT 1 AS live_app'")
    assert sorted((r["application_name"], r["calls"]) for r in got) == [
        ("live_app_one", 1), ("live_app_two", 1)]
    assert len({r["queryid"] for r in got}) == 1


def test_application_name_changed_within_a_session(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """SET application_name between statements of one session: each statement lands in the
    row of the name it ran under, also for names of the longest length (63 bytes) that differ
    in their last byte."""
    long_a = "live_app_long_" + "x" * 47 + "_a"
    long_b = "live_app_long_" + "x" * 47 + "_b"
    assert len(long_a) == 63
    names = ["live_app_a", "live_app_b", "live_app_a", long_a, long_b, long_a, "live_app_b"]
    with server.connect() as c:
        for name in names:
            c.execute("SELECT set_config('application_name', %s, false)", (name,))
            c.execute("SELECT 1 AS live_app_set")
    got = stats(conn, "query = 'SELECT 1 AS live_app_set'")
    assert sorted(r["calls"] for r in got) == [1, 2, 2, 2]
    assert sum(r["calls"] for r in got) == len(names)
    by_name = {r["application_name"]: r["calls"] for r in got}
    assert by_name["live_app_a"] == 2
    assert by_name["live_app_b"] == 2


def test_client_ip_of_ipv4_ipv6_and_unix_socket_clients(
        conn: psycopg.Connection[Any], server: PgServer) -> None:
    """TCP 127.0.0.1 and the Unix socket show 127.0.0.1 (as upstream) in one row of calls 2;
    TCP ::1 shows ::1 in its own row."""
    for host in ("127.0.0.1", "::1", None):
        with server.connect(host=host) as c:
            c.execute("SELECT 1 AS live_ip")
    got = stats(conn, "query = 'SELECT 1 AS live_ip'")
    assert sorted((str(r["client_ip"]), r["calls"]) for r in got) == [
        ("127.0.0.1", 2), ("::1", 1)]
