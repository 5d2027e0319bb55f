"""The pg_stat_monitor view over live and exported buckets, and who may see or export what."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory
from history_helpers import (
    HISTORY, LIVE, MANUAL, RELEASE, calls_of, dicts, export, marker, one, rows, sleep_past_bucket_end,
)
from pgserver import PgServer

PLAIN = "hist_view_plain"
MONITOR = "hist_view_monitor"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets, a 60-bucket window, no automatic export; a plain and a monitor role."""
    server = make_server(settings={**MANUAL, "pg_stat_monitor.pgsm_max_buckets": "60"})
    server.sql(f"CREATE ROLE {PLAIN} LOGIN")
    server.sql(f"CREATE ROLE {MONITOR} LOGIN IN ROLE pg_monitor")
    return server


def test_view_shows_exported_and_live_buckets_once(srv: PgServer) -> None:
    """An exported bucket comes from history, the open one from memory, each exactly once."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_view_window")
        conn.execute(sql)
        conn.execute(sql)
        sleep_past_bucket_end()
        export(conn)
        conn.execute(sql)
        seen = rows(conn, "SELECT bucket_start_time, calls, bucket_done FROM pg_stat_monitor"
                          " WHERE query = %s ORDER BY 1", sql)
        live = rows(conn, f"SELECT bucket_start_time FROM {LIVE} WHERE query = %s", sql)
        hist = rows(conn, f"SELECT bucket_start_time FROM {HISTORY} WHERE query = %s", sql)
        twice = rows(conn, "SELECT bucket_start_time, queryid, userid, dbid, count(*)"
                           " FROM pg_stat_monitor GROUP BY 1, 2, 3, 4 HAVING count(*) > 1")
    assert [(calls, done) for _, calls, done in seen] == [(2, True), (1, False)]
    assert [(seen[0][0],)] == hist
    assert [(seen[1][0],)] == live
    assert twice == []


def test_view_leaves_out_history_older_than_the_window(srv: PgServer) -> None:
    """A history row of a bucket an hour old (window: 60 s) is not in the view."""
    with srv.connect() as conn:
        conn.execute(f"INSERT INTO {HISTORY} (bucket, bucket_start_time, query, calls)"
                     " VALUES (0, date_trunc('second', now()) - interval '1 hour',"
                     " 'hist_view_old', 1)")
        in_view = one(conn, "SELECT count(*) FROM pg_stat_monitor WHERE query = 'hist_view_old'")
        in_history = calls_of(conn, HISTORY, "hist_view_old")
    assert (in_view, in_history) == (0, 1)


def test_view_counts_each_bucket_once_across_several_exports(srv: PgServer) -> None:
    """Three buckets, exported one by one: the view's calls per bucket match what ran."""
    with srv.connect() as conn:
        sql = marker(conn, "hist_view_several")
        for n in (1, 2, 3):
            for _ in range(n):
                conn.execute(sql)
            sleep_past_bucket_end()
            export(conn)
        conn.execute(sql)
        seen = [calls for (calls,) in rows(
            conn, "SELECT calls FROM pg_stat_monitor WHERE query = %s ORDER BY bucket_start_time",
            sql)]
    assert seen == [1, 2, 3, 1]


def test_plain_role_cannot_export(srv: PgServer) -> None:
    """pg_stat_monitor_export() by a role without privileges fails with 42501."""
    with srv.connect(user=PLAIN) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("SELECT pg_stat_monitor_export()")
    assert info.value.sqlstate == "42501"


def test_plain_role_cannot_read_history_directly(srv: PgServer) -> None:
    """The history table is not readable by PUBLIC (42501)."""
    with srv.connect(user=PLAIN) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT count(*) FROM {HISTORY}")


def test_texts_of_other_roles_from_history_are_hidden(srv: PgServer) -> None:
    """From history rows: another role's text is '<insufficient privilege>', one's own is shown."""
    with srv.connect() as conn:
        theirs_sql = marker(conn, "hist_view_theirs")
        own_sql = marker(conn, "hist_view_own")
        conn.execute(f"GRANT SELECT ON hist_view_own TO {PLAIN}")
        conn.execute(theirs_sql)
        queryid = one(conn, f"SELECT queryid FROM {LIVE} WHERE query = %s", theirs_sql)
    with srv.connect(user=PLAIN) as plain:
        plain.execute(own_sql)
    sleep_past_bucket_end()
    with srv.connect() as conn:
        export(conn)
        conn.execute(RELEASE)
        left_live = calls_of(conn, LIVE, theirs_sql) + calls_of(conn, LIVE, own_sql)
    with srv.connect(user=PLAIN) as plain:
        theirs = rows(plain, "SELECT query, calls, username FROM pg_stat_monitor"
                             " WHERE queryid = %s", queryid)
        own = rows(plain, "SELECT calls, username FROM pg_stat_monitor WHERE query = %s",
                   own_sql)
    with srv.connect(user=MONITOR) as monitor:
        shown = rows(monitor, "SELECT query, calls FROM pg_stat_monitor WHERE queryid = %s",
                     queryid)
    assert left_live == 0
    assert theirs == [("<insufficient privilege>", 1, "postgres")]
    assert own == [(1, PLAIN)]
    assert shown == [(theirs_sql, 1)]


def view_rows(server: PgServer, user: str, queryid: int) -> list[dict[str, Any]]:
    """Every column of the view's rows of one statement, as a role sees them."""
    with server.connect(user=user) as conn:
        return dicts(conn, "SELECT * FROM pg_stat_monitor WHERE queryid = %s"
                           " ORDER BY bucket_start_time", queryid)


@pytest.mark.parametrize("user", ["postgres", PLAIN, MONITOR])
def test_a_row_looks_the_same_before_and_after_export(srv: PgServer, user: str) -> None:
    """A finished bucket's row, read from memory then from history, has the same 65 values."""
    with srv.connect() as conn:
        sql = marker(conn, f"hist_view_same_{user}")
        conn.execute(sql)
        conn.execute(sql)
        queryid = one(conn, f"SELECT queryid FROM {LIVE} WHERE query = %s", sql)
    sleep_past_bucket_end()
    before = view_rows(srv, user, queryid)
    with srv.connect() as conn:
        export(conn)
        conn.execute(RELEASE)
        left_live = calls_of(conn, LIVE, sql)
    after = view_rows(srv, user, queryid)
    assert left_live == 0
    assert (len(before), len(after)) == (1, 1)
    changed = {k: (v, after[0][k]) for k, v in before[0].items() if after[0][k] != v}
    assert changed == {}
