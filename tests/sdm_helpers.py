"""Helpers of the distributed-statistics cluster tests: what shards recorded, what coordinators
received, and sending."""

from __future__ import annotations

import time
from typing import Any

from cluster import Cluster
from pgserver import PgServer

# (coordinator, shard, parent queryid, fragment queryid) -> (calls, rows, total_exec_time)
Fragments = dict[tuple[str, str, int, int], tuple[int, int, float]]


def recorded(shard: str, server: PgServer) -> Fragments:
    """The fragments a shard recorded and has not drained yet, per coordinator: read from a
    freeze in a transaction that rolls back, so they stay for the sender."""
    with server.connect() as conn:
        with conn.transaction(force_rollback=True):
            below = conn.execute("SELECT pgsm_internal.pgsm_freeze_fragments()").fetchone()
            assert below is not None
            rows = conn.execute("""
                SELECT coordinator, parent_queryid, fragment_queryid, sum(calls)::bigint,
                       sum(rows)::bigint, sum(total_exec_time)
                FROM pgsm_internal.pgsm_fragment_rows(%s)
                GROUP BY 1, 2, 3""", (below[0],)).fetchall()
    return {(r[0], shard, r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def entries(server: PgServer, coordinator: str) -> int:
    """How many fragment entries (one per bucket, database and user of a fragment) a shard
    holds for a coordinator and has not drained: what its next send delivers."""
    with server.connect() as conn:
        with conn.transaction(force_rollback=True):
            row = conn.execute(
                "SELECT count(*) FROM pgsm_internal.pgsm_fragment_rows("
                "pgsm_internal.pgsm_freeze_fragments()) WHERE coordinator = %s",
                (coordinator,)).fetchone()
    assert row is not None
    return int(row[0])


def recorded_everywhere(cluster: Cluster) -> Fragments:
    """recorded() of every node."""
    found: Fragments = {}
    for name in cluster.names:
        found.update(recorded(name, cluster[name]))
    return found


def received(coordinator: str, server: PgServer) -> Fragments:
    """What a coordinator shows in pg_stat_monitor_sdm_fragments, over all buckets."""
    rows = server.sql("""
        SELECT node, queryid, fragment_queryid, sum(calls)::bigint, sum(rows)::bigint,
               sum(total_exec_time)
        FROM pg_stat_monitor_sdm_fragments GROUP BY 1, 2, 3""")
    return {(coordinator, r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def for_coordinator(fragments: Fragments, coordinator: str) -> Fragments:
    """The entries of one coordinator."""
    return {k: v for k, v in fragments.items() if k[0] == coordinator}


def assert_same(got: Fragments, want: Fragments) -> None:
    """Same keys, same calls and rows, times equal to rounding."""
    assert set(got) == set(want)
    for key, (calls, rows, total) in want.items():
        assert got[key][:2] == (calls, rows), key
        assert abs(got[key][2] - total) <= 1e-9 * max(1.0, total), key


def send(server: PgServer) -> int:
    """pg_stat_monitor_sdm_send() on one node."""
    return int(server.sql("SELECT pg_stat_monitor_sdm_send()")[0][0])


def outbox(server: PgServer) -> dict[str, dict[str, Any]]:
    """pg_stat_monitor_sdm_outbox by coordinator."""
    with server.connect() as conn:
        cur = conn.execute("SELECT * FROM pg_stat_monitor_sdm_outbox")
        names = [d.name for d in cur.description or []]
        return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def quiet(cluster: Cluster) -> None:
    """Make the workers send rarely (the tests send themselves), deliver everything pending,
    and forget what coordinators received so far."""
    for server in cluster.nodes.values():
        server.sql("ALTER SYSTEM SET pg_stat_monitor.pgsm_sdm_send_interval = '1h'")
        server.sql("SELECT pg_reload_conf()")
        time.sleep(0.1)
    for _ in range(2):
        for server in cluster.nodes.values():
            send(server)
    for server in cluster.nodes.values():
        server.sql("TRUNCATE pgsm_internal.pgsm_sdm_received;"
                   " SELECT pg_stat_monitor_sdm_stats_updated_reset()")
