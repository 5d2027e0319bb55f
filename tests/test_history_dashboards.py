"""Every panel query of dashboards/pg_stat_monitor.json runs over exported data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from fixtures import ServerFactory
from history_helpers import (
    HISTORY, MANUAL, distinct_statements, export, marker, one, rows, sleep_past_bucket_end,
)
from pgserver import PgServer

DASHBOARD = Path(__file__).parent.parent / "dashboards" / "pg_stat_monitor.json"
MONITOR = "hist_dash_monitor"


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, rawSql) of every target of the dashboard."""
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["rawSql"]) for p in panels(board["panels"])
            for t in p.get("targets", []) if t.get("rawSql")]


QUERIES = panel_queries()


def expand(sql: str, start: str, end: str) -> str:
    """Substitute the Grafana macros and the $metric variable as Grafana would."""
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)", rf"(\1 BETWEEN '{start}' AND '{end}')", sql)
    sql = sql.replace("$__timeFrom()", f"'{start}'::timestamptz")
    sql = sql.replace("$__timeTo()", f"'{end}'::timestamptz")
    sql = sql.replace("$metric", "total_exec_time")
    assert "$" not in sql, sql
    return sql


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """A server with a few buckets of exported statements, an error among them."""
    server = make_server(settings=dict(MANUAL))
    server.sql(f"CREATE ROLE {MONITOR} LOGIN IN ROLE pg_monitor")
    with server.connect() as conn:
        for sql in distinct_statements("hist_dash", 8):
            conn.execute(sql)
        conn.execute(marker(conn, "hist_dash_marker"))
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        sleep_past_bucket_end()
        assert export(conn) > 0
    return server


@pytest.fixture(scope="module")
def window(srv: PgServer) -> tuple[str, str]:
    """A time range around the exported buckets."""
    start, end = srv.sql("SELECT (now() - interval '1 hour')::text,"
                         " (now() + interval '1 hour')::text")[0]
    return str(start), str(end)


def test_the_dashboard_has_panel_queries() -> None:
    """The dashboard has the eight panel queries the tests run."""
    assert len(QUERIES) == 8


@pytest.mark.parametrize("user", ["postgres", MONITOR])
@pytest.mark.parametrize("title,raw", QUERIES, ids=[t for t, _ in QUERIES])
def test_panel_query_returns_rows(srv: PgServer, window: tuple[str, str], user: str,
                                  title: str, raw: str) -> None:
    """The panel's query runs as superuser and as a pg_monitor member and returns rows."""
    with srv.connect(user=user) as conn:
        got = rows(conn, expand(raw, *window))
    assert len(got) > 0, title


def test_calls_panel_sums_to_the_history(srv: PgServer, window: tuple[str, str]) -> None:
    """The calls series adds up to the calls in history."""
    [raw] = [sql for title, sql in QUERIES if title == "Calls per bucket"]
    with srv.connect(user=MONITOR) as conn:
        series = rows(conn, expand(raw, *window))
        total = one(conn, f"SELECT sum(calls) FROM {HISTORY}")
    assert sum(calls for _, calls in series) == total


def test_errors_panel_counts_the_error(srv: PgServer, window: tuple[str, str]) -> None:
    """The errors series counts the failed division."""
    [raw] = [sql for title, sql in QUERIES if title == "Errors per bucket"]
    with srv.connect(user=MONITOR) as conn:
        series = rows(conn, expand(raw, *window))
    assert sum(errors for _, errors in series) == 1
