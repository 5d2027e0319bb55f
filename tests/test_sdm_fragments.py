"""A shard records the fragments it runs for a coordinator (API.md section 7, DESIGN.md).

A statement that ends with a coordinator's tag is a fragment: besides its ordinary row, its
counters go to the fragment table keyed by (coordinator, parent queryid, fragment id, database,
user). A pushed-down scan is one call with the rows of all its FETCHes; a direct UPDATE is one
call; a row-by-row modify is one call per execution. The sender drains the table through the
commit-time hand-off: what a rolled-back drain read stays for the next one.
"""

from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from cluster import Cluster, cluster_fixture  # noqa: F401
from fixtures import ServerFactory
from pgserver import PgServer

DRAIN = ("SELECT * FROM pgsm_internal.pgsm_fragment_rows(%s)"
         " ORDER BY coordinator, parent_queryid, fragment_queryid")


def drain(server: PgServer, commit: bool = True) -> list[dict[str, Any]]:
    """Freeze, read and release (at commit) the shard's fragment entries, as the sender does."""
    with server.connect() as conn:
        conn.autocommit = False
        below = conn.execute("SELECT pgsm_internal.pgsm_freeze_fragments()").fetchone()
        assert below is not None
        got = conn.cursor(row_factory=dict_row).execute(DRAIN, (below[0],)).fetchall()
        conn.execute("SELECT pgsm_internal.pgsm_release_fragments_on_commit(%s)", (below[0],))
        if commit:
            conn.commit()
        else:
            conn.rollback()
    return got


def coordinator_qid(conn: psycopg.Connection[Any], query: str) -> int:
    """The queryid the coordinator's pg_stat_monitor shows for a statement text."""
    [(qid,)] = conn.execute("SELECT DISTINCT queryid FROM pg_stat_monitor WHERE query = %s",
                            (query,)).fetchall()
    return int(qid)


@pytest.fixture
def n1(cluster: Cluster) -> Iterator[psycopg.Connection[Any]]:
    """A session on n1, the coordinator, with the shards' fragment tables emptied."""
    for name in ("n2", "n3"):
        drain(cluster[name])
        cluster[name].sql("SELECT pg_stat_monitor_reset()")
    with cluster["n1"].connect() as c:
        c.execute("SELECT pg_stat_monitor_reset()")
        yield c


def shard_rows(server: PgServer, pattern: str) -> int:
    """Rows the shard's own pg_stat_monitor counted for statements matching a regex."""
    return int(server.sql("SELECT coalesce(sum(rows), 0) FROM pg_stat_monitor"
                          " WHERE query ~ %s", (pattern,))[0][0])


def test_pushed_down_scan_is_one_call_with_all_its_rows(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """A scan of sharded_p1 (on n2) fetched 100 rows at a time: one fragment call, every row."""
    sql = "SELECT id, v FROM sharded_p1"
    fetched = len(n1.execute(sql).fetchall())
    parent = coordinator_qid(n1, sql)
    got = drain(cluster["n2"])
    fetches = shard_rows(cluster["n2"], "^FETCH ")
    assert fetched > 100
    assert [(r["coordinator"], r["parent_queryid"], r["calls"], r["rows"]) for r in got] == [
        ("n1", parent, 1, fetched)]
    assert fetches == fetched
    assert got[0]["query"] == "SELECT id, v FROM public.sharded_p1"


def test_direct_update_counts_one_call_per_statement(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """Three direct UPDATEs of one foreign partition: three calls, the rows they changed."""
    sql = "UPDATE sharded_p1 SET v = v + 0 WHERE v < 50"
    changed = [n1.execute(sql).rowcount for _ in range(3)]
    parent = coordinator_qid(n1, sql)
    got = drain(cluster["n2"])
    assert [(r["parent_queryid"], r["calls"], r["rows"]) for r in got] == [
        (parent, 3, sum(changed))]
    assert got[0]["query"].startswith("UPDATE public.sharded_p1 SET v = (v + 0)")


def test_row_by_row_update_counts_each_execution(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """An UPDATE that cannot be pushed down: its scan is one call, its modify one per row."""
    sql = "UPDATE sharded_p1 SET v = (random() * 0)::int + v WHERE v < 20"
    changed = n1.execute(sql).rowcount
    parent = coordinator_qid(n1, sql)
    got = {r["query"].split(" ")[0]: r for r in drain(cluster["n2"])}
    assert changed > 1
    assert (got["UPDATE"]["parent_queryid"], got["UPDATE"]["calls"], got["UPDATE"]["rows"]) == (
        parent, changed, changed)
    assert (got["SELECT"]["parent_queryid"], got["SELECT"]["calls"], got["SELECT"]["rows"]) == (
        parent, 1, changed)


def test_each_shard_records_its_own_part(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """A count over the whole table: n2 and n3 each record one call of their partition."""
    sql = "SELECT count(*) FROM sharded"
    n1.execute(sql)
    parent = coordinator_qid(n1, sql)
    got = {name: [(r["coordinator"], r["parent_queryid"], r["calls"]) for r in drain(cluster[name])]
           for name in ("n2", "n3")}
    assert got == {"n2": [("n1", parent, 1)], "n3": [("n1", parent, 1)]}


def test_a_rolled_back_drain_keeps_the_fragments(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """A drain whose transaction aborts leaves its entries; the next drain reads them once."""
    n1.execute("UPDATE sharded_p1 SET v = v + 0 WHERE v < 10")
    first = drain(cluster["n2"], commit=False)
    second = drain(cluster["n2"])
    third = drain(cluster["n2"])
    assert [r["calls"] for r in first] == [1]
    assert [r["calls"] for r in second] == [1]
    assert third == []


@pytest.mark.parametrize("sql", [
    "SELECT 1 /*pgsm_coord='n9',pgsm_qid='1'*/ + 1 AS not_trailing",
    "SELECT 1 AS in_line_comment -- /*pgsm_coord='n9',pgsm_qid='1'*/",
    "SELECT 'x /*pgsm_coord=''n9'',pgsm_qid=''1''*/' AS in_literal",
    "SELECT 1 AS bad_name /*pgsm_coord='n 9',pgsm_qid='1'*/",
    "SELECT 1 AS bad_qid /*pgsm_coord='n9',pgsm_qid='1x'*/",
])
def test_a_tag_that_is_not_the_trailing_comment_is_no_fragment(
        cluster: Cluster, n1: psycopg.Connection[Any], sql: str) -> None:
    """Run on a shard directly: a tag inside a literal, a -- comment or not last is ignored."""
    with cluster["n2"].connect() as c:
        c.execute(sql)
    assert drain(cluster["n2"]) == []


def test_a_trailing_tag_sent_by_hand_is_a_fragment(cluster: Cluster) -> None:
    """The same tag as the trailing comment, run by hand, is recorded under the name it gives."""
    drain(cluster["n2"])
    with cluster["n2"].connect() as c:
        c.execute("SELECT 1 AS by_hand /* first */ /*pgsm_coord='n9',pgsm_qid='-42'*/")
    got = drain(cluster["n2"])
    assert [(r["coordinator"], r["parent_queryid"], r["calls"], r["query"]) for r in got] == [
        ("n9", -42, 1, "SELECT 1 AS by_hand /* first */")]


def test_memory_stays_within_three_mib(make_server: ServerFactory) -> None:
    """At defaults the whole shared memory, fragments included, is at most 3 MiB, with room
    for at least 3,000 statement entries."""
    server = make_server()
    [(total, entries)] = server.sql(
        "SELECT shared_memory_bytes, max_entries FROM pg_stat_monitor_info")
    [(fragments,)] = server.sql("SELECT max_fragments FROM pgsm_internal.pgsm_fragment_info()")
    assert total <= 3 * 1024 * 1024
    assert entries >= 3000
    assert fragments == 512


def test_a_full_fragment_table_counts_what_finds_no_room(make_server: ServerFactory) -> None:
    """16 fragment entries and 20 distinct parents: 16 recorded, 4 calls counted as dropped,
    which any role sees in pg_stat_monitor_info."""
    server = make_server(settings={"pg_stat_monitor.pgsm_sdm_max_fragments": "16"})
    with server.connect() as c:
        for parent in range(20):
            c.execute(f"SELECT 1 AS full_table /*pgsm_coord='n9',pgsm_qid='{parent}'*/")
    [(used, dropped)] = server.sql(
        "SELECT fragments, dropped_calls FROM pgsm_internal.pgsm_fragment_info()")
    server.sql("CREATE ROLE frag_watcher LOGIN")
    seen = server.sql("SELECT max_fragments, fragments, dropped_fragment_calls"
                      " FROM pg_stat_monitor_info", user="frag_watcher")
    got = drain(server)
    assert (used, dropped, len(got), sum(r["calls"] for r in got)) == (16, 4, 16, 16)
    assert seen == [(16, 16, 4)]


def test_send_in_a_transaction_block_drains_nothing(make_server: ServerFactory) -> None:
    """pg_stat_monitor_sdm_send() inside BEGIN leaves the fragment table as it was, so a
    rollback cannot make the same fragments be drained and sent twice."""
    server = make_server()
    with server.connect() as c:
        c.execute("SELECT 1 AS in_block /*pgsm_coord='n9',pgsm_qid='7'*/")
        with c.transaction(force_rollback=True):
            c.execute("SELECT pg_stat_monitor_sdm_send()")
            inside = c.execute("SELECT fragments FROM pgsm_internal.pgsm_fragment_info()").fetchone()
    after = server.sql("SELECT fragments FROM pgsm_internal.pgsm_fragment_info()")
    assert inside == (1,)
    assert after == [(1,)]


def test_wire_ids_stay_above_the_durable_floor_and_keep_across_a_rollback(
        make_server: ServerFactory) -> None:
    """A freeze given a floor above the clock (a clock set back since the last drain) numbers
    the entries above it; the entries of a drain that rolled back keep their ids in the next."""
    server = make_server()
    floor = 10 ** 12        # centiseconds: far beyond the clock
    with server.connect() as c:
        for parent in range(3):
            c.execute(f"SELECT 1 AS wire_ids /*pgsm_coord='n9',pgsm_qid='{parent}'*/")
        with c.transaction(force_rollback=True):
            first = sorted(r[0] for r in c.execute(
                "SELECT wire_id FROM pgsm_internal.pgsm_fragment_rows("
                "pgsm_internal.pgsm_freeze_fragments(%s))", (floor,)).fetchall())
        c.execute("SELECT 1 AS wire_ids /*pgsm_coord='n9',pgsm_qid='7'*/")
        with c.transaction(force_rollback=True):
            second = sorted(r[0] for r in c.execute(
                "SELECT wire_id FROM pgsm_internal.pgsm_fragment_rows("
                "pgsm_internal.pgsm_freeze_fragments(0))").fetchall())
    assert [i >> 20 for i in first] == [floor + 1] * 3
    assert len(set(first)) == 3
    assert second[:3] == first and second[3] >> 20 == floor + 2
