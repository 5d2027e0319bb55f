"""Fixtures: real servers with the library preloaded."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from pgserver import PgServer

ServerFactory = Callable[..., PgServer]


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start servers with given settings; all are removed at the end of the session."""
    servers: list[PgServer] = []

    def make(settings: dict[str, str] | None = None, extension: bool = True,
             start: bool = True) -> PgServer:
        server = PgServer(tmp_path_factory.mktemp("pg"), settings)
        servers.append(server)
        if start:
            server.start()
            if extension:
                server.sql("CREATE EXTENSION pg_stat_monitor CASCADE")
        return server

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture(scope="session")
def server(make_server: ServerFactory) -> PgServer:
    """The shared server at default settings, extension created in postgres."""
    return make_server()


@pytest.fixture
def conn(server: PgServer) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection to a server whose statistics were just reset."""
    with server.connect() as c:
        c.execute("SELECT pg_stat_monitor_reset()")
        yield c


def rows(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    """All rows of a query."""
    return conn.execute(query, params or None).fetchall()


def one(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    """The single value of a one-row, one-column query."""
    result = rows(conn, query, *params)
    assert len(result) == 1, result
    return result[0][0]


def reset(conn: psycopg.Connection[Any]) -> None:
    """Empty the statistics (the reset statement itself is then recorded)."""
    conn.execute("SELECT pg_stat_monitor_reset()")


def stats(conn: psycopg.Connection[Any], where: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of the pg_stat_monitor view matching a condition, as dicts, oldest bucket first."""
    cur = conn.cursor(row_factory=dict_row)
    sql = f"SELECT * FROM pg_stat_monitor WHERE {where} ORDER BY bucket_start_time, query"
    return cur.execute(sql, params or None).fetchall()


def error_of(conn: psycopg.Connection[Any], query: str, *params: Any) -> psycopg.Error:
    """The error a statement raises; the test fails if it succeeds."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(query, params or None)
    return info.value


def seconds_left_in_bucket(conn: psycopg.Connection[Any]) -> float:
    """How long the current bucket still runs, by the server's clock."""
    return float(one(
        conn,
        "SELECT extract(epoch FROM current_bucket_start"
        " + current_setting('pg_stat_monitor.pgsm_bucket_time')::interval"
        " - clock_timestamp())::float8 FROM pg_stat_monitor_info"))


def wait_for_bucket_room(server: PgServer, margin: float) -> None:
    """If the current bucket ends within margin seconds, sleep until the next one has begun."""
    with server.connect() as c:
        left = seconds_left_in_bucket(c)
    if left < margin:
        time.sleep(max(left, 0) + 0.1)


@pytest.fixture
def bucket_room(server: PgServer) -> None:
    """Start the test at least 5 s before its bucket ends, so it never spans two buckets."""
    wait_for_bucket_room(server, 5.0)
