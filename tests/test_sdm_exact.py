"""Exactness: coordinators receive, per parent statement and shard, what the shards recorded.

Statements of several kinds run from two coordinators (n1 and n2); after
pg_stat_monitor_sdm_send() on every node, each coordinator's pg_stat_monitor_sdm_fragments equals
the fragment entries the shards recorded for it, and pg_stat_monitor_sdm_statements shows its
statements with their own calls.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from cluster import Cluster, cluster_fixture  # noqa: F401
from fixtures import wait_for_bucket_room
from sdm_helpers import (
    Fragments,
    assert_same,
    for_coordinator,
    outbox,
    quiet,
    received,
    recorded_everywhere,
    send,
)

K = 4
STATEMENTS = (
    "SELECT v FROM sharded WHERE id = {k}",                      # one partition, a cursor
    "SELECT count(*), sum(v) FROM sharded WHERE v > {v}",        # async append, aggregates
    "UPDATE sharded SET v = v WHERE id = {k}",                   # a direct update
    "UPDATE sharded SET v = (random() * 0)::int + v WHERE id = {k}",   # row by row
)


@pytest.fixture(scope="module")
def quiet_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with nothing pending anywhere and workers that leave sending to the tests."""
    quiet(cluster)
    yield cluster


def run_workload(cluster: Cluster, coordinator: str) -> dict[str, int]:
    """K executions of each statement from one coordinator; returns text -> queryid."""
    queryids = {}
    with cluster[coordinator].connect() as conn:
        for i in range(K):
            for sql in STATEMENTS:
                conn.execute(sql.format(k=10 * i + 7, v=i * 20))
        for sql in STATEMENTS:
            row = conn.execute("SELECT DISTINCT queryid FROM pg_stat_monitor WHERE query = %s",
                               (sql.format(k=7, v=0),)).fetchone()
            assert row is not None, sql
            queryids[sql] = row[0]
    return queryids


def test_each_coordinator_receives_exactly_what_the_shards_recorded(
        quiet_cluster: Cluster) -> None:
    """n1 and n2 coordinate K statements of 4 kinds; after one send on every node each sees,
    per parent, shard and fragment, the shards' calls, rows and time; a second send adds
    nothing."""
    cluster = quiet_cluster
    parents = {c: run_workload(cluster, c) for c in ("n1", "n2")}
    want = recorded_everywhere(cluster)
    for coordinator in ("n1", "n2"):
        assert {k[2] for k in for_coordinator(want, coordinator)} == set(
            parents[coordinator].values())
    delivered = sum(send(cluster[name]) for name in cluster.names)
    assert delivered >= len(want)
    for coordinator in ("n1", "n2"):
        assert_same(received(coordinator, cluster[coordinator]),
                    for_coordinator(want, coordinator))
    for name in cluster.names:
        assert [v["pending"] for v in outbox(cluster[name]).values() if v["pending"]] == []
    assert sum(send(cluster[name]) for name in cluster.names) == 0
    for coordinator in ("n1", "n2"):
        assert_same(received(coordinator, cluster[coordinator]),
                    for_coordinator(want, coordinator))


def test_statements_view_shows_own_calls_and_fragment_sums(quiet_cluster: Cluster) -> None:
    """For each statement run from n2: its own K calls, its shards, and fragment calls equal to
    the sum of what its shards recorded for it."""
    cluster = quiet_cluster
    cluster["n2"].sql("SELECT pg_stat_monitor_reset(); TRUNCATE pgsm_internal.pgsm_sdm_received")
    wait_for_bucket_room(cluster["n2"], 10.0)
    parents = run_workload(cluster, "n2")
    want = for_coordinator(recorded_everywhere(cluster), "n2")
    for name in cluster.names:
        send(cluster[name])
    for sql, qid in parents.items():
        mine = {k: v for k, v in want.items() if k[2] == qid}
        rows = cluster["n2"].sql(
            "SELECT sum(calls)::int, max(shards)::int, sum(fragment_calls)::bigint,"
            " sum(fragment_rows)::bigint FROM pg_stat_monitor_sdm_statements WHERE queryid = %s",
            (qid,))
        assert rows[0][0] == K, sql
        assert rows[0][1] == len({k[1] for k in mine}), sql
        assert rows[0][2:] == (sum(v[0] for v in mine.values()),
                               sum(v[1] for v in mine.values())), sql


def test_senders_count_what_they_sent(quiet_cluster: Cluster) -> None:
    """The shards' outbox counters and the coordinators' stats_updated agree on entries."""
    cluster = quiet_cluster
    for name in cluster.names:
        cluster[name].sql("TRUNCATE pgsm_internal.pgsm_sdm_coordinators")
    run_workload(cluster, "n1")
    want = for_coordinator(recorded_everywhere(cluster), "n1")
    for name in cluster.names:
        send(cluster[name])
    sent = {shard: outbox(cluster[shard]).get("n1", {}).get("sent", 0) for shard in ("n2", "n3")}
    stats = {r[0]: r[1] for r in cluster["n1"].sql(
        "SELECT node, entries_received FROM pg_stat_monitor_sdm_stats_updated()")}
    for shard in ("n2", "n3"):
        entries = len([k for k in want if k[1] == shard])
        assert sent[shard] >= entries > 0
        assert outbox(cluster[shard])["n1"]["bytes_sent"] < outbox(cluster[shard])["n1"][
            "bytes_raw"]
        assert stats[shard] >= entries


def counts(fragments: Fragments) -> dict[tuple[str, str, int, int], tuple[int, int]]:
    """Calls and rows of each fragment (the times are compared by assert_same)."""
    return {k: v[:2] for k, v in fragments.items()}


def test_the_workers_alone_deliver_everything_once(quiet_cluster: Cluster) -> None:
    """With a 1 s send interval and no manual send, the workers drain and deliver what the
    shards recorded for n1 and n3, exactly; the shards' own rows still count the fragments."""
    cluster = quiet_cluster
    for name in cluster.names:
        send(cluster[name])
        cluster[name].sql("TRUNCATE pgsm_internal.pgsm_sdm_received")
    for name in cluster.names:
        cluster[name].sql("ALTER SYSTEM SET pg_stat_monitor.pgsm_sdm_send_interval = '1s'")
        cluster[name].sql("SELECT pg_reload_conf()")
    try:
        run_workload(cluster, "n1")
        run_workload(cluster, "n3")
        want = recorded_everywhere(cluster)
        deadline = time.monotonic() + 90
        while any(counts(received(c, cluster[c])) != counts(for_coordinator(want, c))
                  for c in ("n1", "n3")):
            assert time.monotonic() < deadline, "the workers did not deliver"
            time.sleep(0.2)
        for coordinator in ("n1", "n3"):
            assert_same(received(coordinator, cluster[coordinator]),
                        for_coordinator(want, coordinator))
        shard_calls = cluster["n2"].sql(
            "SELECT sum(calls)::bigint FROM pg_stat_monitor WHERE query LIKE '%pgsm_coord=%'")
        assert shard_calls[0][0] >= sum(v[0] for k, v in want.items() if k[1] == "n2")
    finally:
        quiet(cluster)
