"""Texts: bounded comments, one lexing policy for comments, LATIN1 databases (issue 7.4, 7.7,
7.8)."""

from __future__ import annotations

import pytest

from fixtures import ServerFactory, wait_for_bucket_room
from hardening_helpers import create_roles
from history_helpers import distinct_statements, rows, sleep_past_bucket_end
from pgserver import PgServer

BUCKET = 4
COMMENTS_MAX = 512  # bytes kept of a statement's comments
CHATTY = "hard_text_chatty"
BYSTANDER = "hard_text_bystander"
COMMENTER = "hard_text_commenter"
LATIN = "hard_text_latin"
LATIN_DB = "hard_lat"

# two 420 kB comments, one of 1-byte and one of 2-byte characters; distinct queryids
BIG = [
    "SELECT 1 /* " + "x" * 420_000 + " */",
    "SELECT 1, 2 /* " + "é" * 210_000 + " */",
]


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """4-second buckets and the default text area (1 MB)."""
    server = make_server(settings={"pg_stat_monitor.pgsm_bucket_time": str(BUCKET)})
    create_roles(server, CHATTY, BYSTANDER, COMMENTER, LATIN)
    return server


@pytest.mark.slow
def test_comments_are_bounded_so_one_role_cannot_push_others_out(srv: PgServer) -> None:
    """Two 420 kB comments keep at most 512 bytes each, live and in history; nobody overflows."""
    wait_for_bucket_room(srv, 3.0)
    with srv.connect() as conn:
        conn.execute("SELECT pg_stat_monitor_reset()")
    with srv.connect(user=CHATTY) as chatty:
        chatty.execute("SET pg_stat_monitor.pgsm_extract_comments = on")
        for sql in BIG:
            chatty.execute(sql)
    others = distinct_statements("hard_text_bystander", 50)
    with srv.connect(user=BYSTANDER) as bystander:
        for sql in others:
            bystander.execute(sql)
    with srv.connect() as conn:
        [losses] = rows(conn, "SELECT overflowed_calls, dropped_calls FROM pg_stat_monitor_info")
        own = rows(conn, "SELECT query, calls FROM pg_stat_monitor WHERE username = %s",
                   BYSTANDER)
        live = rows(conn, "SELECT octet_length(comments), left(comments, 8)"
                          " FROM pg_stat_monitor WHERE username = %s AND query LIKE 'SELECT %%'"
                          " ORDER BY query", CHATTY)
        sleep_past_bucket_end(BUCKET)
        conn.execute("SELECT pg_stat_monitor_export()")
        history = rows(conn, "SELECT octet_length(comments), left(comments, 8)"
                             " FROM pg_stat_monitor_history WHERE username = %s"
                             " AND query LIKE 'SELECT %%' ORDER BY query", CHATTY)
    assert losses == (0, 0)
    assert sorted(own) == sorted((sql, 1) for sql in others)
    assert [start for _, start in live] == ["/* xxxxx", "/* ééééé"]
    assert [start for _, start in history] == ["/* xxxxx", "/* ééééé"]
    assert max(size for size, _ in live + history) <= COMMENTS_MAX


def test_comments_inside_literals_are_not_comments(srv: PgServer) -> None:
    """Only real comments: E-strings with \\', dollar quotes, doubled quotes, -- lines skipped."""
    cases = {
        r"SELECT E'it\'s /* not a comment */' AS a /* real */": "/* real */",
        "SELECT $$ /* no */ $$, 2 /* yes */": "/* yes */",
        "SELECT 1, 2, 3 -- /* no */\n/* yes */": "/* yes */",
        "SELECT $t$ it's /* no */ $t$, 2, 3, 4 /* yes */": "/* yes */",
        "SELECT 'a''b /* no */', 2, 3, 4, 5 /* yes */": "/* yes */",
        r"SELECT E'\\', 2, 3, 4, 5, 6 /* yes */": "/* yes */",
        r"SELECT E'\\\' /* no */', 2, 3, 4, 5, 6, 7 /* yes */": "/* yes */",
    }
    wait_for_bucket_room(srv, 2.0)
    with srv.connect(user=COMMENTER) as conn:
        conn.execute("SET pg_stat_monitor.pgsm_extract_comments = on")
        for sql in cases:
            conn.execute(sql)
    with srv.connect() as conn:
        got = dict(rows(conn, "SELECT query, comments FROM pg_stat_monitor"
                              " WHERE username = %s AND query LIKE 'SELECT %%'", COMMENTER))
    assert got == cases


@pytest.mark.slow
def test_latin1_database_texts_keep_their_characters(srv: PgServer) -> None:
    """A LATIN1 database's 'café' reads as 'café' (view and history); a UTF8 'Ω' as '?' there."""
    srv.sql(f"DROP DATABASE IF EXISTS {LATIN_DB}")
    srv.sql(f"CREATE DATABASE {LATIN_DB} TEMPLATE template0 ENCODING 'LATIN1'"
            " LC_COLLATE 'C' LC_CTYPE 'C'")
    srv.sql("CREATE EXTENSION pg_stat_monitor CASCADE", dbname=LATIN_DB)
    cafe = "SELECT 'café' AS cafe_latin1_test"
    omega = "SELECT 'Ω' AS omega_test"
    wait_for_bucket_room(srv, 2.0)
    with srv.connect(LATIN_DB, user=LATIN, client_encoding="UTF8") as lat:
        lat.execute(cafe)
    with srv.connect(user=LATIN) as utf8:
        utf8.execute(omega)
    read = ("SELECT query FROM pg_stat_monitor WHERE username = %s AND datname = %s"
            " AND query LIKE %s")
    with srv.connect() as conn:
        in_utf8 = rows(conn, read, LATIN, LATIN_DB, "%cafe_latin1_test")
    with srv.connect(LATIN_DB, client_encoding="UTF8") as lat:
        in_latin1 = rows(lat, read, LATIN, "postgres", "%omega_test")
    sleep_past_bucket_end(BUCKET)
    with srv.connect() as conn:
        conn.execute("SELECT pg_stat_monitor_export()")
        history = rows(conn, "SELECT query FROM pg_stat_monitor_history"
                             " WHERE username = %s AND datname = %s", LATIN, LATIN_DB)
    assert in_utf8 == [(cafe,)]
    assert in_latin1 == [("SELECT '?' AS omega_test",)]
    assert history == [(cafe,)]
