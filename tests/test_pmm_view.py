"""What a monitoring agent such as PMM reads from the view: a client_ip in every row, and one
total row order whether a finished bucket is read from memory or from history (issue 9,
behaviours 1 and 3)."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures import ServerFactory
from hardening_helpers import create_roles
from history_helpers import (
    MANUAL, RELEASE, Conn, distinct_statements, export, one, rows, sleep_past_bucket_end,
    sleep_to_bucket_start)
from pgserver import PgServer

TOP_N = 4
READER = "pmm_view_reader"
APPS = ("pmm_app_a", "pmm_app_b", "pmm_app_c")
# the view's order after the bucket (see the view in the install script)
ORDER = ("pgsm_query_id", "total_exec_time", "calls", "queryid", "userid", "dbid", "toplevel",
         "top_queryid", "planid", "client_ip", "application_name", "elevel")


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets exported by hand, 4 statements per bucket kept in history, a reader in
    pg_read_all_stats (as PMM's role is, through pg_monitor)."""
    settings = dict(MANUAL)
    settings["pg_stat_monitor.pgsm_export_top_n"] = str(TOP_N)
    server = make_server(settings=settings)
    create_roles(server, READER)
    server.sql(f"GRANT pg_read_all_stats TO {READER}")
    return server


def run_bucket(srv: PgServer, tag: str, hosts: tuple[str | None, ...]) -> Any:
    """Run, in one bucket, statements from clients on these hosts (None: the Unix socket) under
    several application names, then export the bucket; its start."""
    sleep_to_bucket_start()
    with srv.connect() as su:
        bucket = one(su, "SELECT current_bucket_start FROM pg_stat_monitor_info")
    for host in hosts:
        with srv.connect(host=host) as conn:
            for app in APPS:
                conn.execute("SELECT set_config('application_name', %s, false)", (app,))
                for sql in distinct_statements(tag, 3):
                    conn.execute(sql)
    sleep_past_bucket_end()
    with srv.connect() as conn:
        export(conn)
    return bucket


def view_rows(conn: Conn, bucket: Any) -> list[tuple[Any, ...]]:
    """The bucket's rows in view order: the order columns, then query and client_ip."""
    return rows(conn, f"SELECT {', '.join(ORDER)}, query, host(client_ip)"
                      " FROM pg_stat_monitor WHERE bucket_start_time = %s", bucket)


def last_per_query_id(read: list[tuple[Any, ...]]) -> dict[Any, tuple[Any, ...]]:
    """What a reader keeping the last row per pgsm_query_id (PMM) keeps of one bucket."""
    kept = {}
    for row in read:
        if row[0] is not None:
            kept[row[0]] = row
    return kept


def test_monitoring_role_reads_no_null_client_ip_from_memory_or_history(srv: PgServer) -> None:
    """A pg_read_all_stats role reads a bucket of Unix-socket and TCP clients from memory, then
    from history (with its '<other>' row): client_ip is never NULL; the Unix socket is 127.0.0.1
    in the TCP client's rows, '<other>' is 0.0.0.0."""
    bucket = run_bucket(srv, "pmm_ip", (None, "127.0.0.1"))
    with srv.connect(user=READER) as reader:
        memory = rows(reader, "SELECT host(client_ip), calls, query FROM pg_stat_monitor"
                              " WHERE bucket_start_time = %s", bucket)
        with srv.connect() as su:
            su.execute(RELEASE)
        history = rows(reader, "SELECT host(client_ip), calls, query FROM pg_stat_monitor"
                               " WHERE bucket_start_time = %s", bucket)
        nulls = one(reader, "SELECT count(*) FROM pg_stat_monitor WHERE client_ip IS NULL")
    ours = sorted((str(r[0]), r[1]) for r in memory if r[2].endswith("/* pmm_ip */"))
    # 3 statements x 3 application names, each run over the Unix socket and TCP: one row each
    assert ours == [("127.0.0.1", 2)] * 9
    assert [r[0] for r in history if r[2] == "<other>"] == ["0.0.0.0"]
    assert None not in [r[0] for r in memory + history]
    assert nulls == 0


def test_finished_bucket_reads_the_same_from_memory_and_history(srv: PgServer) -> None:
    """A finished bucket whose statements have several rows each (application names): its rows
    come in the view's total order, the same from memory and from history, and a reader keeping
    the last row per pgsm_query_id keeps the same rows from both."""
    bucket = run_bucket(srv, "pmm_order", ("127.0.0.1",))
    with srv.connect() as conn:
        first = view_rows(conn, bucket)
        again = view_rows(conn, bucket)
        conn.execute(RELEASE)
        history = view_rows(conn, bucket)
    ours = [r for r in first if r[-2].endswith("/* pmm_order */")]
    assert len(ours) == 9
    assert first == again
    # sorted by the order columns (NULLs last, as ORDER BY puts them)
    assert first == sorted(first, key=lambda r: [(v is None, v) for v in r[:len(ORDER)]])
    # history keeps TOP_N of the bucket's rows (and '<other>'), in the same relative order
    kept = [r for r in history if r[-2] != "<other>"]
    assert len(kept) == TOP_N
    assert kept == [r for r in first if r in kept]
    from_history = last_per_query_id(history)
    from_memory = last_per_query_id(first)
    assert from_history == {k: v for k, v in from_memory.items() if k in from_history}
