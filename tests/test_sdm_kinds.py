"""Each kind of remote statement is attributed on the coordinator (issue 8, must-show 1).

From n1: a pushed-down join, a pushed-down aggregate over an async append, a direct DELETE, a
batch INSERT into a foreign table, and prepared statements on generic and custom plans, each run
K times. After the shards send, n1's pg_stat_monitor_sdm_fragments shows, for each parent
statement (its queryid on n1), exactly the calls and rows the shards recorded for it.
"""

from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from cluster import Cluster, cluster_fixture  # noqa: F401
from sdm_helpers import assert_same, for_coordinator, quiet, received, recorded_everywhere, send

K = 3


@pytest.fixture(scope="module")
def quiet_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with nothing pending anywhere and workers that leave sending to the tests."""
    quiet(cluster)
    yield cluster


def qid_of(conn: psycopg.Connection[Any], pattern: str) -> int:
    """The queryid n1's pg_stat_monitor shows for the one statement matching a LIKE pattern."""
    [(qid,)] = conn.execute("SELECT DISTINCT queryid FROM pg_stat_monitor WHERE query LIKE %s",
                            (pattern,)).fetchall()
    return int(qid)


def run_kinds(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """K executions of each kind from n1; kind -> parent queryid."""
    conn.execute("SELECT pg_stat_monitor_reset()")
    # ids of partition 1, which lives on n2
    ids = [r[0] for r in conn.execute(
        "SELECT g FROM generate_series(2000001, 2000200) g"
        " WHERE satisfies_hash_partition('sharded'::regclass, 3, 1, g) LIMIT 15").fetchall()]
    for i in range(K):
        conn.execute("SELECT count(*) FROM sharded_p1 s JOIN ft_n2 f ON f.id = s.id"
                     f" WHERE s.v > {i}")
        conn.execute(f"SELECT count(*), sum(v) FROM sharded WHERE v > {i}")
        conn.execute(f"DELETE FROM sharded WHERE id = {ids[-1 - i]} AND v < 0")
        batch = ids[4 * i:4 * i + 4]
        conn.execute("INSERT INTO sharded_p1 (id, v) SELECT g, 0 FROM unnest(%s::int[]) g",
                     (batch,))
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute("PREPARE generic_p(int) AS SELECT v FROM sharded WHERE id = $1")
    for i in range(K):
        conn.execute(f"EXECUTE generic_p({ids[i]})")   # pruned at run time to n2's partition
    conn.execute("SET plan_cache_mode = force_custom_plan")
    conn.execute("PREPARE custom_p(int) AS SELECT v FROM sharded WHERE v = $1")
    for i in range(K):
        conn.execute(f"EXECUTE custom_p({i})")
    conn.execute("RESET plan_cache_mode")
    return {
        "join": qid_of(conn, "SELECT count(*) FROM sharded_p1 s JOIN ft_n2 f%"),
        "aggregate": qid_of(conn, "SELECT count(*), sum(v) FROM sharded WHERE v >%"),
        "delete": qid_of(conn, "DELETE FROM sharded WHERE id =%"),
        "batch insert": qid_of(conn, "INSERT INTO sharded_p1 (id, v)%"),
        "generic plan": qid_of(conn, "PREPARE generic_p%"),
        "custom plan": qid_of(conn, "PREPARE custom_p%"),
    }


def test_every_kind_is_attributed_on_the_coordinator(quiet_cluster: Cluster) -> None:
    """Join, aggregate, DELETE, batch INSERT, generic and custom plans: each parent on n1 shows
    exactly the fragments its shards recorded, with K or more calls."""
    cluster = quiet_cluster
    with cluster["n1"].connect() as conn:
        parents = run_kinds(conn)
        conn.execute("DELETE FROM sharded WHERE id > 2000000")
    want = for_coordinator(recorded_everywhere(cluster), "n1")
    before = received("n1", cluster["n1"])
    for name in cluster.names:
        send(cluster[name])
    got = {k: v for k, v in received("n1", cluster["n1"]).items() if k not in before}
    assert_same({k: v for k, v in got.items() if k[2] in parents.values()},
                {k: v for k, v in want.items() if k[2] in parents.values()})
    calls = {kind: sum(v[0] for k, v in got.items() if k[2] == qid)
             for kind, qid in parents.items()}
    assert all(n >= K for n in calls.values()), calls
