"""pg_stat_monitor_maintain(now): daily UTC partitions created ahead, dropped past retention."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory
from history_helpers import HISTORY, MANUAL, export, one, rows, sleep_past_bucket_end
from pgserver import PgServer

PREFIX = "pg_stat_monitor_history_p"


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """Its own server: these tests create and drop partitions at will."""
    return make_server(settings=dict(MANUAL))


def partitions(conn: psycopg.Connection[Any]) -> list[str]:
    """The day partitions of the history table, by name."""
    return [name for (name,) in rows(
        conn, "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
              f" WHERE i.inhparent = '{HISTORY}'::regclass AND c.relname LIKE '{PREFIX}%%'"
              " ORDER BY 1")]


def maintain(conn: psycopg.Connection[Any], now: str, prefix: str = PREFIX
             ) -> list[tuple[str, str]]:
    """Call pg_stat_monitor_maintain(now, force => true) (these days may be ahead of the clock);
    its (action, partition) rows of one family (history by default), sorted."""
    return sorted((action, name) for action, name in rows(
        conn, "SELECT action, partition FROM pg_stat_monitor_maintain(%s, force => true)", now)
        if name.startswith(prefix))


def bounds(conn: psycopg.Connection[Any], name: str) -> str:
    """The partition bound of a partition, as PostgreSQL shows it (in UTC)."""
    conn.execute("SET TimeZone = 'UTC'")
    return str(one(conn, "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c"
                         " WHERE c.relname = %s", name))


def test_maintain_creates_today_and_the_days_ahead(srv: PgServer) -> None:
    """now = 2026-01-01: p20260101, p20260102 and p20260103 are created, with UTC day bounds."""
    with srv.connect() as conn:
        got = maintain(conn, "2026-01-01 00:00:00+00")
        again = maintain(conn, "2026-01-01 12:00:00+00")
        names = partitions(conn)
        bound = bounds(conn, f"{PREFIX}20260102")
    assert got == [("created", f"{PREFIX}20260101"), ("created", f"{PREFIX}20260102"),
                   ("created", f"{PREFIX}20260103")]
    assert again == []
    assert {f"{PREFIX}20260101", f"{PREFIX}20260102", f"{PREFIX}20260103"} <= set(names)
    assert bound == ("FOR VALUES FROM ('2026-01-02 00:00:00+00') TO ('2026-01-03 00:00:00+00')")


def test_maintain_drops_partitions_past_retention(srv: PgServer) -> None:
    """now = 2026-03-01 (retention 30 days): the January partitions are dropped."""
    with srv.connect() as conn:
        maintain(conn, "2026-01-01 00:00:00+00")
        got = maintain(conn, "2026-03-01 00:00:00+00")
        names = partitions(conn)
    assert ("dropped", f"{PREFIX}20260101") in got
    assert ("dropped", f"{PREFIX}20260103") in got
    assert ("created", f"{PREFIX}20260301") in got
    assert ("created", f"{PREFIX}20260303") in got
    assert [n for n in names if n.startswith(f"{PREFIX}202601")] == []
    assert {f"{PREFIX}20260301", f"{PREFIX}20260302", f"{PREFIX}20260303"} <= set(names)


def test_maintain_keeps_the_last_retention_days(srv: PgServer) -> None:
    """A partition exactly 30 days old is kept, one 31 days old is dropped."""
    with srv.connect() as conn:
        maintain(conn, "2026-05-01 00:00:00+00")
        maintain(conn, "2026-05-02 00:00:00+00")
        got = maintain(conn, "2026-06-01 00:00:00+00")
        names = partitions(conn)
    assert ("dropped", f"{PREFIX}20260501") in got
    assert ("dropped", f"{PREFIX}20260502") not in got
    assert f"{PREFIX}20260502" in names


def test_maintain_uses_utc_days(srv: PgServer) -> None:
    """now given at +14:00 names the UTC day: 2025-07-01 05:00+14 is 2025-06-30 in UTC."""
    with srv.connect() as conn:
        conn.execute("SET TimeZone = 'Pacific/Kiritimati'")
        got = maintain(conn, "2025-07-01 05:00:00+14")
    assert got[0] == ("created", f"{PREFIX}20250630")
    assert len(got) == 3


def test_maintain_moves_default_partition_rows_into_a_new_day(srv: PgServer) -> None:
    """A row of a day without partition sits in the default one, then moves into the new day."""
    with srv.connect() as conn:
        conn.execute(f"INSERT INTO {HISTORY} (bucket_start_time, query, calls)"
                     " VALUES ('2027-05-05 10:00:00+00', 'hist_part_moved', 1)")
        before = one(conn, f"SELECT tableoid::regclass::text FROM {HISTORY}"
                           " WHERE query = 'hist_part_moved'")
        maintain(conn, "2027-05-05 00:00:00+00")
        after = one(conn, f"SELECT tableoid::regclass::text FROM {HISTORY}"
                          " WHERE query = 'hist_part_moved'")
    assert before == "pgsm_internal.pg_stat_monitor_history_default"
    assert after == f"pgsm_internal.{PREFIX}20270505"


def test_maintain_honours_the_days_ahead_and_retention_settings(srv: PgServer) -> None:
    """pgsm_history_days_ahead = 4 creates five days; retention = 2 drops older days."""
    with srv.connect() as conn:
        conn.execute("SET pg_stat_monitor.pgsm_history_days_ahead = 4")
        conn.execute("SET pg_stat_monitor.pgsm_history_retention = 2")
        created = maintain(conn, "2028-02-27 00:00:00+00")
        later = maintain(conn, "2028-03-03 00:00:00+00")
    assert [r for r in created if r[0] == "created"] == [("created", f"{PREFIX}{d}")
                       for d in ("20280227", "20280228", "20280229", "20280301", "20280302")]
    assert ("dropped", f"{PREFIX}20280229") in later
    assert ("dropped", f"{PREFIX}20280301") not in later
    assert ("created", f"{PREFIX}20280307") in later


def test_received_fragments_have_day_partitions_dropped_with_history(srv: PgServer) -> None:
    """The coordinator's received fragments: day partitions made and dropped with history's
    (retention 30 days), a row of a day without one moved out of the default partition."""
    received, prefix = "pgsm_internal.pgsm_sdm_received", "pgsm_sdm_received_p"
    with srv.connect() as conn:
        conn.execute(f"INSERT INTO {received} VALUES ('n9', '2029-03-02 10:00:00+00', 1, 2, 5, 10,"
                     " 'SELECT 1', 1, 1, 1, 1, 1, 0, 0, 0, 0)")
        before = one(conn, f"SELECT tableoid::regclass::text FROM {received} WHERE node = 'n9'")
        created = maintain(conn, "2029-03-01 00:00:00+00", prefix)
        moved = one(conn, f"SELECT tableoid::regclass::text FROM {received} WHERE node = 'n9'")
        later = maintain(conn, "2029-04-02 00:00:00+00", prefix)
        left = one(conn, f"SELECT count(*) FROM {received} WHERE node = 'n9'")
    assert before == "pgsm_internal.pgsm_sdm_received_default"
    assert [r for r in created if r[0] == "created"] == [
        ("created", f"{prefix}{d}") for d in ("20290301", "20290302", "20290303")]
    assert moved == f"pgsm_internal.{prefix}20290302"
    assert ("dropped", f"{prefix}20290302") in later and left == 0


def test_exported_rows_are_not_in_the_default_partition(srv: PgServer) -> None:
    """After an export every row of today's buckets is in its day partition, none in default."""
    with srv.connect() as conn:
        conn.execute("SELECT 1 AS hist_part_export")
        sleep_past_bucket_end()
        assert export(conn) > 0
        got = rows(conn, f"SELECT tableoid::regclass::text, 'pgsm_internal.pg_stat_monitor_history_p'"
                         " || to_char(bucket_start_time AT TIME ZONE 'UTC', 'YYYYMMDD')"
                         f" FROM {HISTORY} WHERE query = 'SELECT 1 AS hist_part_export'")
    assert len(got) == 1
    [(stored_in, day)] = got
    assert stored_in == day


def test_maintain_is_for_superusers_only(srv: PgServer) -> None:
    """A plain role may not call pg_stat_monitor_maintain (42501)."""
    srv.sql("DROP ROLE IF EXISTS hist_part_plain")
    srv.sql("CREATE ROLE hist_part_plain LOGIN")
    with srv.connect(user="hist_part_plain") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM pg_stat_monitor_maintain()")
