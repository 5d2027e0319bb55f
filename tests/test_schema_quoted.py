"""The extension in a schema whose name needs quoting ("PgSm"): export, maintenance,
histogram() and the view work."""

from __future__ import annotations

import pytest

from fixtures import ServerFactory
from history_helpers import MANUAL, marker, one, rows, sleep_to_bucket_start
from pgserver import PgServer

HISTORY = '"PgSm".pg_stat_monitor_history'


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """Its own server, the extension created in schema "PgSm"."""
    server = make_server(settings=dict(MANUAL), extension=False)
    with server.connect() as conn:
        conn.execute('CREATE SCHEMA "PgSm"')
        conn.execute('CREATE EXTENSION pg_stat_monitor SCHEMA "PgSm" CASCADE')
    return server


def test_export_and_maintenance_in_a_quoted_schema(srv: PgServer) -> None:
    """The marker's 2 calls are exported; maintenance afterwards has nothing left to do."""
    with srv.connect() as conn:
        statement = marker(conn, "quoted_export_marker")
        conn.execute(statement)
        conn.execute(statement)
        sleep_to_bucket_start()
        written = one(conn, 'SELECT "PgSm".pg_stat_monitor_export()')
        exported = rows(conn, f"SELECT calls FROM {HISTORY} WHERE query = %s", statement)
        again = rows(conn, 'SELECT action, partition FROM "PgSm".pg_stat_monitor_maintain()')
        days = one(conn, f"SELECT count(*) FROM pg_inherits WHERE inhparent = '{HISTORY}'::regclass")
    assert written >= 1
    assert exported == [(2,)]
    assert again == []
    assert days == 4


def test_histogram_and_view_in_a_quoted_schema(srv: PgServer) -> None:
    """histogram() of a statement run 4 times sums to 4; the view shows its 4 calls."""
    with srv.connect() as conn:
        statement = marker(conn, "quoted_histogram_marker")
        sleep_to_bucket_start()
        for _ in range(4):
            conn.execute(statement)
        [(bucket, queryid, calls)] = rows(
            conn, 'SELECT bucket, queryid, calls FROM "PgSm".pg_stat_monitor WHERE query = %s',
            statement)
        freqs = rows(conn, 'SELECT freq FROM "PgSm".histogram(%s, %s)'
                     ' AS h(range text, freq int, bar text)', bucket, queryid)
    assert calls == 4
    assert len(freqs) == 22
    assert sum(f for (f,) in freqs) == 4
