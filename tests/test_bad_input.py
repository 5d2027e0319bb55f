"""Bad input to maintenance and top_statements: a SQL error with a specific SQLSTATE and
nothing changed; a far-future maintenance only when forced."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory, error_of
from history_helpers import HISTORY, MANUAL, export, marker, one, rows, sleep_to_bucket_start
from pgserver import PgServer

TOP = "SELECT * FROM pg_stat_monitor_top_statements(%s, %s, %s, %s)"
MAINTAIN = "SELECT * FROM pg_stat_monitor_maintain(%s, %s)"
NOW = "2026-01-01 00:00:00+00"
LATER = "2026-01-02 00:00:00+00"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """Its own server: a forced maintenance drops today's partition."""
    return make_server(settings=dict(MANUAL))


def exported_marker(conn: psycopg.Connection[Any], name: str) -> str:
    """Run a marker statement once and export its bucket; its text."""
    statement = marker(conn, name)
    conn.execute(statement)
    sleep_to_bucket_start()
    export(conn)
    return statement


def history_calls(conn: psycopg.Connection[Any], statement: str) -> int:
    """Calls of a statement in history."""
    return int(one(conn, f"SELECT coalesce(sum(calls), 0) FROM {HISTORY} WHERE query = %s",
                   statement))


def assert_sql_error(error: psycopg.Error, sqlstate: str) -> None:
    """The error has this SQLSTATE and a message without a Python traceback."""
    assert error.sqlstate == sqlstate, (error.sqlstate, str(error))
    assert "Traceback" not in (error.diag.message_primary or "")


def test_maintain_refuses_a_now_more_than_a_day_ahead(srv: PgServer) -> None:
    """now() + 100 days: 22023 with a hint naming force; history and partitions stay."""
    with srv.connect() as conn:
        statement = exported_marker(conn, "bad_input_future")
        parts = one(conn, f"SELECT count(*) FROM pg_inherits WHERE inhparent = '{HISTORY}'::regclass")
        error = error_of(conn, "SELECT * FROM pg_stat_monitor_maintain(now() + interval '100 days')")
        parts_after = one(conn, "SELECT count(*) FROM pg_inherits"
                                f" WHERE inhparent = '{HISTORY}'::regclass")
        calls = history_calls(conn, statement)
    assert_sql_error(error, "22023")
    assert "force" in (error.diag.message_hint or "")
    assert (parts_after, calls) == (parts, 1)


def test_maintain_accepts_a_now_less_than_a_day_ahead(srv: PgServer) -> None:
    """now() + 23 hours is accepted and drops nothing."""
    with srv.connect() as conn:
        got = rows(conn, "SELECT action FROM pg_stat_monitor_maintain(now() + interval '23 hours')"
                         " WHERE action = 'dropped'")
    assert got == []


def test_forced_maintenance_far_ahead_drops_past_retention(srv: PgServer) -> None:
    """force => true with now() + 100 days drops today's partition and its rows."""
    with srv.connect() as conn:
        statement = exported_marker(conn, "bad_input_forced")
        today = one(conn, "SELECT 'pg_stat_monitor_history_p'"
                          " || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
        dropped = rows(conn, "SELECT partition FROM pg_stat_monitor_maintain("
                             "now() + interval '100 days', force => true)"
                             " WHERE action = 'dropped'")
        calls = history_calls(conn, statement)
    assert (today,) in dropped
    assert calls == 0


@pytest.mark.parametrize(("now", "force", "sqlstate"), [
    (None, False, "22004"),
    (NOW, None, "22004"),
    ("infinity", False, "22008"),
    ("-infinity", False, "22008"),
    ("infinity", True, "22008"),
])
def test_maintain_rejects_null_and_infinite_arguments(
        srv: PgServer, now: str | None, force: bool | None, sqlstate: str) -> None:
    """NULL now or force: 22004; an infinite now: 22008, even forced."""
    with srv.connect() as conn:
        error = error_of(conn, MAINTAIN, now, force)
    assert_sql_error(error, sqlstate)


@pytest.mark.parametrize(("start", "end", "metric", "n", "sqlstate"), [
    (NOW, LATER, None, 20, "22004"),
    (NOW, LATER, "no_such_metric", 20, "22023"),
    (NOW, LATER, "total_exec_time", None, "22004"),
    (NOW, LATER, "total_exec_time", -1, "22023"),
    (None, LATER, "calls", 20, "22004"),
    (NOW, None, "calls", 20, "22004"),
    ("-infinity", LATER, "calls", 20, "22008"),
    (NOW, "infinity", "calls", 20, "22008"),
    (LATER, NOW, "calls", 20, "22023"),
])
def test_top_statements_rejects_bad_arguments(
        srv: PgServer, start: str | None, end: str | None, metric: str | None,
        n: int | None, sqlstate: str) -> None:
    """NULL arguments: 22004; unknown metric, negative n, start after end: 22023;
    infinite dates: 22008."""
    with srv.connect() as conn:
        error = error_of(conn, TOP, start, end, metric, n)
    assert_sql_error(error, sqlstate)


def test_top_statements_accepts_an_empty_range(srv: PgServer) -> None:
    """start = end is a valid, empty range: no rows."""
    with srv.connect() as conn:
        got = rows(conn, TOP, NOW, NOW, "calls", 5)
    assert got == []
