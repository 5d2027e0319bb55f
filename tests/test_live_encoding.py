"""Texts from a database whose bytes are not valid UTF-8 never break readers or the export."""

from __future__ import annotations

import time

import psycopg

from fixtures import ServerFactory
from history_helpers import HISTORY, MANUAL, export, one, rows


def test_sql_ascii_bytes_are_shown_as_question_marks(make_server: ServerFactory) -> None:
    """A Latin-1 byte sent to a SQL_ASCII database reads as '?' in a UTF-8 one, and exports."""
    srv = make_server(settings=MANUAL)
    srv.sql("CREATE DATABASE legacy ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
            " TEMPLATE template0")
    with psycopg.connect(srv.dsn("legacy"), autocommit=True) as legacy:
        legacy.execute("SET client_encoding = 'SQL_ASCII'")
        legacy.execute(b"SELECT 'caf\xe9' AS enc_probe")
    time.sleep(1.2)  # the bucket ends
    with srv.connect() as conn:
        live = rows(conn, "SELECT query FROM pg_stat_monitor_internal(true)"
                          " WHERE query LIKE '%AS enc_probe'")
        written = export(conn)
        stored = one(conn, f"SELECT query FROM {HISTORY} WHERE query LIKE '%AS enc_probe'")
    assert live == [("SELECT 'caf?' AS enc_probe",)]
    assert written >= 1
    assert stored == "SELECT 'caf?' AS enc_probe"
