"""Counters, command types and prepared statements on a real server (API.md section 3)."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from fixtures import reset, rows, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")


def fresh_table(conn: psycopg.Connection[Any], name: str, nrows: int) -> None:
    """(Re)create a one-column table holding 1..nrows."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name}(a int)")
    if nrows:
        conn.execute(f"INSERT INTO {name} SELECT generate_series(1, {nrows})")


def test_select_counts_calls_rows_and_cached_blocks(conn: psycopg.Connection[Any]) -> None:
    """A cached SELECT: calls, rows, shared_blks_hit as EXPLAIN BUFFERS reports, no reads."""
    fresh_table(conn, "live_cnt_small", 10)
    conn.execute("SELECT a FROM live_cnt_small")
    plan = "\n".join(r[0] for r in rows(
        conn, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) SELECT a FROM live_cnt_small"))
    match = re.search(r"Buffers: shared hit=(\d+)\n", plan + "\n")
    assert match is not None, plan
    hit_per_run = int(match.group(1))
    assert hit_per_run == 1
    reset(conn)
    for _ in range(3):
        conn.execute("SELECT a FROM live_cnt_small")
    [row] = stats(conn, "query = 'SELECT a FROM live_cnt_small'")
    assert row["calls"] == 3
    assert row["rows"] == 30
    assert row["shared_blks_hit"] == 3 * hit_per_run
    assert row["shared_blks_read"] == 0
    assert row["wal_records"] == 0
    assert (row["cmd_type"], row["cmd_type_text"]) == (1, "SELECT")
    assert row["toplevel"] is True
    assert row["top_queryid"] is None
    assert row["top_query"] is None


def test_insert_counts_rows_and_wal(conn: psycopg.Connection[Any]) -> None:
    """An INSERT of 100 rows into a fresh table: rows = 100, at least 100 WAL records."""
    fresh_table(conn, "live_cnt_ins", 0)
    reset(conn)
    conn.execute("INSERT INTO live_cnt_ins SELECT generate_series(1, 100)")
    [row] = stats(conn, "query = 'INSERT INTO live_cnt_ins SELECT generate_series(1, 100)'")
    assert row["calls"] == 1
    assert row["rows"] == 100
    assert row["wal_records"] >= 100
    assert row["wal_bytes"] > 0
    assert (row["cmd_type"], row["cmd_type_text"]) == (3, "INSERT")


def test_update_after_checkpoint_dirties_a_page_and_logs_a_full_page(
        conn: psycopg.Connection[Any]) -> None:
    """An UPDATE of 10 rows after CHECKPOINT: rows = 10, a dirtied block, a full-page image."""
    fresh_table(conn, "live_cnt_upd", 50)
    conn.execute("CHECKPOINT")
    reset(conn)
    conn.execute("UPDATE live_cnt_upd SET a = a + 1000 WHERE a <= 10")
    [row] = stats(conn, "query = 'UPDATE live_cnt_upd SET a = a + 1000 WHERE a <= 10'")
    assert row["calls"] == 1
    assert row["rows"] == 10
    assert row["shared_blks_dirtied"] >= 1
    assert row["shared_blks_read"] == 0
    assert row["wal_fpi"] >= 1
    assert row["wal_records"] >= 10
    assert (row["cmd_type"], row["cmd_type_text"]) == (2, "UPDATE")


def test_delete_counts_rows(conn: psycopg.Connection[Any]) -> None:
    """A DELETE of 7 rows: calls 1, rows 7, command type 4."""
    fresh_table(conn, "live_cnt_del", 20)
    reset(conn)
    conn.execute("DELETE FROM live_cnt_del WHERE a > 13")
    [row] = stats(conn, "query = 'DELETE FROM live_cnt_del WHERE a > 13'")
    assert (row["calls"], row["rows"]) == (1, 7)
    assert row["wal_records"] >= 7
    assert (row["cmd_type"], row["cmd_type_text"]) == (4, "DELETE")


def test_merge_counts_rows(conn: psycopg.Connection[Any]) -> None:
    """A MERGE touching 3 rows: calls 1, rows 3, command type 5."""
    fresh_table(conn, "live_cnt_merge", 5)
    reset(conn)
    sql = ("MERGE INTO live_cnt_merge t USING (SELECT generate_series(3, 7) AS a) s"
           " ON t.a = s.a WHEN MATCHED THEN UPDATE SET a = t.a + 100")
    conn.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert (row["calls"], row["rows"]) == (1, 3)
    assert (row["cmd_type"], row["cmd_type_text"]) == (5, "MERGE")


def test_utility_statements_are_command_type_6(conn: psycopg.Connection[Any]) -> None:
    """CREATE TABLE and CREATE TABLE AS are UTILITY rows; CREATE TABLE AS counts its rows."""
    conn.execute("DROP TABLE IF EXISTS live_cnt_util, live_cnt_ctas")
    reset(conn)
    conn.execute("CREATE TABLE live_cnt_util(a int)")
    conn.execute("CREATE TABLE live_cnt_ctas AS SELECT generate_series(1, 5) AS a")
    [create] = stats(conn, "query = 'CREATE TABLE live_cnt_util(a int)'")
    assert (create["calls"], create["rows"]) == (1, 0)
    assert (create["cmd_type"], create["cmd_type_text"]) == (6, "UTILITY")
    assert create["wal_records"] > 0
    [ctas] = stats(
        conn, "query = 'CREATE TABLE live_cnt_ctas AS SELECT generate_series(1, 5) AS a'")
    assert (ctas["calls"], ctas["rows"]) == (1, 5)
    assert (ctas["cmd_type"], ctas["cmd_type_text"]) == (6, "UTILITY")


def test_track_utility_off_skips_utility_statements(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track_utility off, a utility statement gets no row; a SELECT still does."""
    conn.execute("DROP TABLE IF EXISTS live_cnt_noutil")
    conn.execute("SET pg_stat_monitor.pgsm_track_utility = off")
    reset(conn)
    conn.execute("CREATE TABLE live_cnt_noutil(a int)")
    conn.execute("SELECT a FROM live_cnt_noutil")
    assert stats(conn, "query = 'CREATE TABLE live_cnt_noutil(a int)'") == []
    assert len(stats(conn, "query = 'SELECT a FROM live_cnt_noutil'")) == 1


def test_get_cmd_type_names_the_command_types(conn: psycopg.Connection[Any]) -> None:
    """get_cmd_type(1..7) names SELECT, UPDATE, INSERT, DELETE, MERGE, UTILITY, NOTHING."""
    got = rows(conn, "SELECT get_cmd_type(i) FROM generate_series(1, 7) i ORDER BY i")
    assert [r[0] for r in got] == [
        "SELECT", "UPDATE", "INSERT", "DELETE", "MERGE", "UTILITY", "NOTHING"]


def test_cpu_heavy_statement_has_cpu_time(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track_cpu_time on, a statement that computes for a while has
    cpu_user_time + cpu_sys_time > 0, and no more than its execution time."""
    conn.execute("SET pg_stat_monitor.pgsm_track_cpu_time = on")
    conn.execute("SELECT count(*) FROM generate_series(1, 3000000) AS live_cpu")
    conn.execute("RESET pg_stat_monitor.pgsm_track_cpu_time")
    [row] = stats(conn, "query = 'SELECT count(*) FROM generate_series(1, 3000000) AS live_cpu'")
    assert row["calls"] == 1
    assert row["cpu_user_time"] + row["cpu_sys_time"] > 0
    assert row["cpu_user_time"] >= 0
    assert row["cpu_sys_time"] >= 0
    # CPU is measured from executor start to end, execution time from run to finish:
    # allow a millisecond for the executor's start and end
    assert row["cpu_user_time"] + row["cpu_sys_time"] <= row["total_exec_time"] + 1.0


def on_cpu_ms(pid: int) -> float:
    """A process's time on CPU so far in ms, exact to the ns (first field of /proc/PID/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6


def test_cpu_time_counts_statements_shorter_than_a_tick(conn: psycopg.Connection[Any]) -> None:
    """With pgsm_track_cpu_time on, 200 executions of a sub-millisecond statement have
    cpu_user_time + cpu_sys_time of at least half, and at most all, of what the backend spent
    on CPU meanwhile (not only the scheduler ticks that happened to fall inside them)."""
    query = "SELECT count(*) FROM generate_series(1, 3000) AS live_cpu_short"
    conn.execute("SET pg_stat_monitor.pgsm_track_cpu_time = on")
    conn.execute(query, prepare=True)
    reset(conn)
    pid = conn.info.backend_pid
    # the backend waits for this client between statements: its schedstat is current
    before = on_cpu_ms(pid)
    for _ in range(200):
        conn.execute(query, prepare=True)
    backend_ms = on_cpu_ms(pid) - before
    conn.execute("RESET pg_stat_monitor.pgsm_track_cpu_time")
    [row] = stats(conn, "query = %s", query)
    assert row["calls"] == 200
    assert row["cpu_user_time"] >= 0
    assert row["cpu_sys_time"] >= 0
    cpu_ms = row["cpu_user_time"] + row["cpu_sys_time"]
    # the executor is most of each round trip's backend CPU; getrusage() reports whole
    # microseconds, so each of the 200 readings pairs may be up to 2 us over
    assert 0.5 * backend_ms <= cpu_ms <= backend_ms + 0.4, (cpu_ms, backend_ms)


def test_cpu_time_is_not_measured_at_defaults(conn: psycopg.Connection[Any]) -> None:
    """pgsm_track_cpu_time is off by default: the same heavy statement has zero CPU times."""
    setting = rows(conn, "SELECT setting, boot_val FROM pg_settings"
                         " WHERE name = 'pg_stat_monitor.pgsm_track_cpu_time'")
    assert setting == [("off", "off")]
    conn.execute("SELECT count(*) FROM generate_series(1, 3000000) AS live_nocpu")
    [row] = stats(conn, "query = 'SELECT count(*) FROM generate_series(1, 3000000) AS live_nocpu'")
    assert row["calls"] == 1
    assert (row["cpu_user_time"], row["cpu_sys_time"]) == (0, 0)


def test_execute_counts_on_the_prepared_statement_row(conn: psycopg.Connection[Any]) -> None:
    """EXECUTE and DEALLOCATE have no rows; the prepared statement's row gets the calls."""
    prepare = "PREPARE live_prep(int) AS SELECT count(*) FROM generate_series(1, $1) AS g"
    conn.execute(prepare)
    for n in (10, 20, 30):
        conn.execute(f"EXECUTE live_prep({n})")
    conn.execute("DEALLOCATE live_prep")
    # as in upstream and pg_stat_statements, the text is that of the PREPARE statement
    [row] = stats(conn, "query LIKE %s", "%live_prep%")
    assert row["query"] == prepare
    assert (row["calls"], row["rows"]) == (3, 3)
    assert (row["cmd_type"], row["cmd_type_text"]) == (1, "SELECT")
    assert row["toplevel"] is True
    assert stats(conn, "query ~* '^(EXECUTE|DEALLOCATE)'") == []
