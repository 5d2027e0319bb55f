"""A full entry table loses no calls: they go to an overflow row (API.md sections 3 and 5)."""

from __future__ import annotations

import pytest

from fixtures import ServerFactory, one, reset, rows, wait_for_bucket_room
from pgserver import PgServer


@pytest.fixture(scope="module")
def small_server(make_server: ServerFactory) -> PgServer:
    """A server with the smallest entry table (pgsm_max = 256kB)."""
    return make_server(settings={"pg_stat_monitor.pgsm_max": "'256kB'"})


@pytest.mark.slow
def test_more_statements_than_entries_keep_every_call(small_server: PgServer) -> None:
    """max_entries + 200 distinct statements: every call is counted, the rest in '<overflow>'
    (client_ip 0.0.0.0)."""
    wait_for_bucket_room(small_server, 10.0)
    with small_server.connect() as conn:
        max_entries = int(one(conn, "SELECT max_entries FROM pg_stat_monitor_info"))
        n = max_entries + 200
        reset(conn)  # recorded: 1 call
        bucket = one(conn, "SELECT current_bucket_start FROM pg_stat_monitor_info")  # 1 call
        # distinct queryids: a utility statement's queryid is a hash of its text (constants
        # and column aliases of a SELECT are not part of its queryid)
        for i in range(n):
            conn.execute(f"SET work_mem = '{64 + i}kB'")
        # only this bucket: the view also shows buckets exported before the reset
        total = one(conn, "SELECT sum(calls) FROM pg_stat_monitor WHERE bucket_start_time = %s",
                    bucket)
        # one statement, so both sides are read before it is itself recorded
        [(overflow_rows, overflow_calls, overflow_ip, overflowed_calls, dropped_calls)] = rows(
            conn,
            "SELECT (SELECT count(*) FROM pg_stat_monitor WHERE query = '<overflow>'),"
            " (SELECT sum(calls) FROM pg_stat_monitor WHERE query = '<overflow>'),"
            " (SELECT host(client_ip) FROM pg_stat_monitor WHERE query = '<overflow>'),"
            " overflowed_calls, dropped_calls FROM pg_stat_monitor_info")
    assert total == n + 2
    assert overflow_rows == 1
    # a row of many clients has an address all the same: readers (PMM) need one
    assert overflow_ip == "0.0.0.0"
    assert overflowed_calls > 0
    assert overflow_calls == overflowed_calls
    assert dropped_calls == 0
