"""A finished bucket keeps every row in the view after its export, while it is in the window
(issue 7.3)."""

from __future__ import annotations

import time

import pytest

from fixtures import ServerFactory, wait_for_bucket_room
from hardening_helpers import create_roles
from history_helpers import distinct_statements, one, rows, sleep_past_bucket_end
from pgserver import PgServer

BUCKET = 5
TOP_N = 300
STATEMENTS = 450
READER = "hard_window_reader"
TAG = "hard_window"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """5-second buckets, 300 statements per bucket in history, a worker pass every second."""
    server = make_server(settings={
        "pg_stat_monitor.pgsm_bucket_time": str(BUCKET),
        "pg_stat_monitor.pgsm_export_interval": "1",
        "pg_stat_monitor.pgsm_export_top_n": str(TOP_N),
    })
    create_roles(server, READER)
    server.sql(f"GRANT pg_read_all_stats TO {READER}")
    return server


@pytest.mark.slow
def test_exported_bucket_shows_all_its_statements_in_the_view(srv: PgServer) -> None:
    """450 statements, exported (300 + '<other>' in history): the view still shows all 450."""
    # read after a second export and a worker pass, 1.6 s after the bucket ended: it stays in
    # the window (two 5-second buckets) for 3 s more
    wait_for_bucket_room(srv, 3.0)
    with srv.connect() as conn:
        bucket = one(conn, "SELECT current_bucket_start FROM pg_stat_monitor_info")
        for sql in distinct_statements(TAG, STATEMENTS):
            conn.execute(sql)
        sleep_past_bucket_end(BUCKET)
        conn.execute("SELECT pg_stat_monitor_export()")
        # a later export and a worker pass: each lets memory release what is in history
        conn.execute("SELECT pg_stat_monitor_export()")
        time.sleep(1.5)
        [(kept, other, history_calls)] = rows(
            conn,
            "SELECT count(*) FILTER (WHERE query <> '<other>'),"
            "       count(*) FILTER (WHERE query = '<other>'), sum(calls)"
            " FROM pg_stat_monitor_history WHERE bucket_start_time = %s", bucket)
    with srv.connect(user=READER) as reader:
        [(texts, folded, view_calls)] = rows(
            reader,
            "SELECT count(DISTINCT query) FILTER (WHERE query LIKE %s),"
            "       count(*) FILTER (WHERE query IN ('<other>', '<overflow>')), sum(calls)"
            " FROM pg_stat_monitor WHERE bucket_start_time = %s", f"%/* {TAG} */", bucket)
        in_window = one(reader, "SELECT %s >= window_start FROM pg_stat_monitor_info", bucket)
        # a new column: entries of buckets in history, kept in memory for the view (read
        # through jsonb so that its absence shows as None next to the other numbers)
        exported_entries = one(reader, "SELECT (to_jsonb(i) ->> 'exported_entries')::bigint"
                                       " FROM pg_stat_monitor_info i")
    assert in_window is True
    assert (kept, other) == (TOP_N, 1)
    assert (texts, folded) == (STATEMENTS, 0)
    assert view_calls == history_calls
    assert exported_entries >= STATEMENTS
