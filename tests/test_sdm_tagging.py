"""The coordinator tags the remote SQL postgres_fdw keeps in the plan (API.md section 7, DESIGN.md).

Every remote statement of a plan ends with ` /*pgsm_coord='<node>',pgsm_qid='<queryid>'*/`, the
queryid being the top-level statement's as EXPLAIN VERBOSE shows it. Checked through EXPLAIN
VERBOSE on the coordinator and through the shard's own `pg_stat_monitor` texts.
"""

from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from cluster import Cluster, cluster_fixture  # noqa: F401
from pgserver import PgServer


def tag(coord: str, qid: int) -> str:
    """The comment appended to each remote SQL, with its leading space."""
    return f" /*pgsm_coord='{coord}',pgsm_qid='{qid}'*/"


def explain(conn: psycopg.Connection[Any], sql: str) -> tuple[list[str], int]:
    """The plan lines of EXPLAIN (VERBOSE, COSTS OFF) and its Query Identifier."""
    lines = [r[0] for r in conn.execute(f"EXPLAIN (VERBOSE, COSTS OFF) {sql}").fetchall()]
    [qid] = [int(line.split(": ")[1]) for line in lines if line.startswith("Query Identifier: ")]
    return lines, qid


def stripped(lines: list[str]) -> list[str]:
    """Plan lines without their indentation."""
    return [line.strip() for line in lines]


def remote_sqls(lines: list[str]) -> list[str]:
    """The Remote SQL texts of a plan, top to bottom."""
    return [line.split("Remote SQL: ", 1)[1] for line in lines if "Remote SQL: " in line]


def shard_texts(server: PgServer, pattern: str) -> dict[str, int]:
    """Query text -> calls in the shard's pg_stat_monitor, for texts matching a regex."""
    rows = server.sql("SELECT query, sum(calls)::int FROM pg_stat_monitor WHERE query ~ %s"
                      " GROUP BY query", (pattern,))
    return {q: c for q, c in rows}


def coordinator_qid(conn: psycopg.Connection[Any], query: str) -> int:
    """The queryid the coordinator's pg_stat_monitor shows for a statement text."""
    [(qid,)] = conn.execute("SELECT DISTINCT queryid FROM pg_stat_monitor WHERE query = %s",
                            (query,)).fetchall()
    return int(qid)


def ids_in(conn: psycopg.Connection[Any], remainder: int, first: int, n: int) -> list[int]:
    """The n smallest ids >= first that hash into partition `sharded_p<remainder>`."""
    rows = conn.execute(
        "SELECT g FROM generate_series(%s, %s + 1000) g"
        " WHERE satisfies_hash_partition('sharded'::regclass, 3, %s, g) ORDER BY g LIMIT %s",
        (first, first, remainder, n)).fetchall()
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def k(cluster: Cluster) -> int:
    """An id stored in partition 1, which lives on n2 (a foreign partition seen from n1)."""
    with cluster["n1"].connect() as c:
        return ids_in(c, 1, 1, 1)[0]


@pytest.fixture
def n1(cluster: Cluster) -> Iterator[psycopg.Connection[Any]]:
    """A fresh session on n1, the coordinator of most tests."""
    with cluster["n1"].connect() as c:
        yield c


def test_pushed_down_select_on_one_partition_is_tagged(
        cluster: Cluster, n1: psycopg.Connection[Any], k: int) -> None:
    """A SELECT pruned to one foreign partition: its cursor query carries n1's tag."""
    sql = f"SELECT v FROM sharded WHERE id = {k}"
    lines, qid = explain(n1, sql)
    assert lines[0] == "Foreign Scan on public.sharded_p1 sharded"
    assert remote_sqls(lines) == [
        f"SELECT v FROM public.sharded_p1 WHERE ((id = {k})){tag('n1', qid)}"]
    on_shard = cluster["n2"].sql(f"SELECT v FROM sharded_p1 WHERE id = {k}")
    assert n1.execute(sql).fetchall() == on_shard


def test_async_append_scans_are_tagged(cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """A whole-table scan: each async foreign scan of the Append is tagged; the rows are right."""
    sql = "SELECT id, v FROM sharded WHERE v > 50"
    lines, qid = explain(n1, sql)
    assert [s for s in stripped(lines) if s.startswith("->  Async")] == [
        "->  Async Foreign Scan on public.sharded_p1 sharded_2",
        "->  Async Foreign Scan on public.sharded_p2 sharded_3",
    ]
    assert remote_sqls(lines) == [
        f"SELECT id, v FROM public.sharded_p1 WHERE ((v > 50)){tag('n1', qid)}",
        f"SELECT id, v FROM public.sharded_p2 WHERE ((v > 50)){tag('n1', qid)}",
    ]
    expected = sum(cluster[cluster.home(r)].sql(
        f"SELECT count(*) FROM sharded_p{r} WHERE v > 50")[0][0] for r in range(3))
    assert len(n1.execute(sql).fetchall()) == expected


def test_pushed_down_join_is_tagged(cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """A join of two foreign tables of one server runs remotely as one tagged statement."""
    sql = "SELECT s.id, f.v FROM sharded_p1 s JOIN ft_n2 f ON f.id = s.id WHERE s.v = 3"
    lines, qid = explain(n1, sql)
    assert "Relations: (public.sharded_p1 s) INNER JOIN (public.ft_n2 f)" in stripped(lines)
    assert remote_sqls(lines) == [
        "SELECT r1.id, r2.v FROM (public.sharded_p1 r1 INNER JOIN public.t_local r2"
        f" ON (((r1.id = r2.id)) AND ((r1.v = 3)))){tag('n1', qid)}"]
    on_shard = cluster["n2"].sql(sql.replace("ft_n2", "t_local"))
    assert sorted(n1.execute(sql).fetchall()) == sorted(on_shard) != []


def test_pushed_down_aggregate_is_tagged(cluster: Cluster,
                                         n1: psycopg.Connection[Any]) -> None:
    """An aggregate over one foreign table runs remotely as one tagged statement."""
    sql = "SELECT count(*), sum(v) FROM sharded_p1"
    lines, qid = explain(n1, sql)
    assert "Relations: Aggregate on (public.sharded_p1)" in stripped(lines)
    assert remote_sqls(lines) == [f"SELECT count(*), sum(v) FROM public.sharded_p1{tag('n1', qid)}"]
    assert n1.execute(sql).fetchall() == cluster["n2"].sql(sql)


@pytest.mark.parametrize("sql, node, remote", [
    ("UPDATE sharded SET v = v + 1 WHERE id = {k}", "Foreign Update",
     "UPDATE public.sharded_p1 SET v = (v + 1) WHERE ((id = {k}))"),
    ("DELETE FROM sharded WHERE id = {k}", "Foreign Delete",
     "DELETE FROM public.sharded_p1 WHERE ((id = {k}))"),
], ids=["update", "delete"])
def test_direct_modify_is_tagged(n1: psycopg.Connection[Any], k: int, sql: str, node: str,
                                 remote: str) -> None:
    """A direct UPDATE or DELETE pushed down whole is one tagged remote statement."""
    lines, qid = explain(n1, sql.format(k=k))
    assert f"->  {node} on public.sharded_p1 sharded_1" in stripped(lines)
    assert remote_sqls(lines) == [remote.format(k=k) + tag("n1", qid)]


def test_row_by_row_update_is_tagged(n1: psycopg.Connection[Any], k: int) -> None:
    """An UPDATE that cannot be pushed down: the ctid UPDATE and its FOR UPDATE scan are tagged."""
    sql = f"UPDATE sharded SET v = (random() * 0)::int + v WHERE id = {k}"
    lines, qid = explain(n1, sql)
    assert remote_sqls(lines) == [
        f"UPDATE public.sharded_p1 SET v = $2 WHERE ctid = $1{tag('n1', qid)}",
        f"SELECT id, v, pad, ctid FROM public.sharded_p1 WHERE ((id = {k})) FOR UPDATE"
        f"{tag('n1', qid)}",
    ]
    assert n1.execute(sql).rowcount == 1


def test_row_by_row_update_of_every_partition_is_tagged(n1: psycopg.Connection[Any]) -> None:
    """An UPDATE of every partition: each foreign result relation (fdwPrivLists entry) is tagged."""
    sql = "UPDATE sharded SET v = (random() * 0)::int + v WHERE v = -1"
    lines, qid = explain(n1, sql)
    t = tag("n1", qid)
    assert remote_sqls(lines) == [
        f"UPDATE public.sharded_p1 SET v = $2 WHERE ctid = $1{t}",
        f"UPDATE public.sharded_p2 SET v = $2 WHERE ctid = $1{t}",
        f"SELECT id, v, pad, ctid FROM public.sharded_p1 WHERE ((v = (-1))) FOR UPDATE{t}",
        f"SELECT id, v, pad, ctid FROM public.sharded_p2 WHERE ((v = (-1))) FOR UPDATE{t}",
    ]
    assert n1.execute(sql).rowcount == 0


@pytest.mark.parametrize("conflict", ["", " ON CONFLICT DO NOTHING"])
def test_batch_insert_is_tagged_and_rebuilt(cluster: Cluster, n1: psycopg.Connection[Any],
                                            conflict: str) -> None:
    """A batch INSERT into a foreign table is tagged; 25 rows arrive as tagged batches 10+10+5."""
    first = 100_000 if not conflict else 110_000
    ids = ids_in(n1, 1, first, 25)
    array = "'{" + ",".join(map(str, ids)) + "}'"
    sql = f"INSERT INTO sharded_p1 SELECT g, 7, 'batch' FROM unnest({array}::int[]) g{conflict}"
    lines, qid = explain(n1, sql)
    assert "Batch Size: 10" in stripped(lines)
    assert remote_sqls(lines) == [
        f"INSERT INTO public.sharded_p1(id, v, pad) VALUES ($1, $2, $3){conflict}{tag('n1', qid)}"]
    n2 = cluster["n2"]
    n2.sql("SELECT pg_stat_monitor_reset()")
    n1.execute(sql)
    assert n2.sql("SELECT count(*) FROM sharded_p1 WHERE id = ANY(%s) AND pad = 'batch'",
                  (ids,)) == [(25,)]

    def values(n: int) -> str:
        return ", ".join(f"(${3 * i + 1}, ${3 * i + 2}, ${3 * i + 3})" for i in range(n))
    prefix = "INSERT INTO public.sharded_p1(id, v, pad) VALUES "
    assert shard_texts(n2, "^INSERT INTO public.sharded_p1") == {
        f"{prefix}{values(10)}{conflict}{tag('n1', qid)}": 2,
        f"{prefix}{values(5)}{conflict}{tag('n1', qid)}": 1,
    }


@pytest.mark.parametrize("mode, cols", [("force_generic_plan", "v, pad"),
                                        ("force_custom_plan", "pad")])
def test_prepared_statement_is_tagged_with_its_queryid(
        cluster: Cluster, n1: psycopg.Connection[Any], k: int,
        mode: str, cols: str) -> None:
    """EXPLAIN EXECUTE and EXECUTE: the tag holds the prepared query's queryid, on either plan."""
    name = f"p_{mode}"
    prepare = f"PREPARE {name}(int) AS SELECT {cols} FROM sharded WHERE id = $1"
    n1.execute(f"SET plan_cache_mode = {mode}")
    n1.execute(prepare)
    lines, qid = explain(n1, f"EXECUTE {name}({k})")
    param = "$1::integer" if mode == "force_generic_plan" else str(k)
    remote = f"SELECT {cols} FROM public.sharded_p1 WHERE ((id = {param})){tag('n1', qid)}"
    assert remote_sqls(lines) == [remote]
    n2 = cluster["n2"]
    n2.sql("SELECT pg_stat_monitor_reset()")
    assert len(n1.execute(f"EXECUTE {name}({k})").fetchall()) == 1
    assert coordinator_qid(n1, prepare) == qid
    assert shard_texts(n2, "^DECLARE .* FROM public.sharded_p1 WHERE") == {
        f"DECLARE c1 CURSOR FOR\n{remote}": 1}


def test_nested_statement_carries_top_level_queryid(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """A foreign scan inside a plpgsql function is tagged with the calling top-level statement."""
    n1.execute("CREATE OR REPLACE FUNCTION sdm_nested() RETURNS bigint LANGUAGE plpgsql"
               " AS $$ BEGIN RETURN (SELECT count(*) FROM sharded_p2 WHERE v < 10); END $$")
    n1.execute("SET pg_stat_monitor.pgsm_track = 'all'")
    n3 = cluster["n3"]
    n3.sql("SELECT pg_stat_monitor_reset()")
    n1.execute("SELECT sdm_nested()")
    top = coordinator_qid(n1, "SELECT sdm_nested()")
    nested = coordinator_qid(n1, "(SELECT count(*) FROM sharded_p2 WHERE v < 10)")
    assert nested != top
    assert shard_texts(n3, "^DECLARE .* FROM public.sharded_p2 WHERE") == {
        "DECLARE c1 CURSOR FOR\nSELECT count(*) FROM public.sharded_p2 WHERE ((v < 10))"
        f"{tag('n1', top)}": 1}


def test_nested_cached_plan_is_tagged_for_each_caller(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """plpgsql reuses a nested plan in a session; each call still names its own top statement."""
    n1.execute("CREATE OR REPLACE FUNCTION sdm_cached() RETURNS bigint LANGUAGE plpgsql"
               " AS $$ BEGIN RETURN (SELECT count(*) FROM sharded_p2 WHERE v > 90); END $$")
    n3 = cluster["n3"]
    remote = "DECLARE c1 CURSOR FOR\nSELECT count(*) FROM public.sharded_p2 WHERE ((v > 90))"
    for top in ("SELECT sdm_cached()", "SELECT sdm_cached(), 1", "SELECT sdm_cached()"):
        n3.sql("SELECT pg_stat_monitor_reset()")   # the shard keeps the first text of a queryid
        n1.execute(top)
        assert shard_texts(n3, "^DECLARE .* FROM public.sharded_p2 WHERE") == {
            remote + tag("n1", coordinator_qid(n1, top)): 1}


def test_any_node_coordinates(cluster: Cluster) -> None:
    """n2 as coordinator tags its remote SQL with its own name (partition 0 lives on n1)."""
    with cluster["n2"].connect() as n2:
        k0 = ids_in(n2, 0, 1, 1)[0]
        lines, qid = explain(n2, f"SELECT v FROM sharded WHERE id = {k0}")
        assert remote_sqls(lines) == [
            f"SELECT v FROM public.sharded_p0 WHERE ((id = {k0})){tag('n2', qid)}"]


def test_plans_without_postgres_fdw_are_unchanged(n1: psycopg.Connection[Any]) -> None:
    """A local plan and a file_fdw scan carry no tag and run as before."""
    lines, _ = explain(n1, "SELECT v FROM sharded_p0 WHERE id < 10")
    assert not any("/*" in line for line in lines)
    n1.execute("CREATE EXTENSION IF NOT EXISTS file_fdw")
    n1.execute("CREATE SERVER IF NOT EXISTS sdm_files FOREIGN DATA WRAPPER file_fdw")
    n1.execute("CREATE FOREIGN TABLE IF NOT EXISTS sdm_seq (a int) SERVER sdm_files"
               " OPTIONS (program 'seq 1 5', format 'csv')")
    lines, _ = explain(n1, "SELECT sum(a) FROM sdm_seq")
    assert "Foreign Program: seq 1 5" in stripped(lines)
    assert not any("/*" in line for line in lines)
    assert n1.execute("SELECT sum(a) FROM sdm_seq").fetchall() == [(15,)]


def test_shard_view_shows_tagged_fragments(
        cluster: Cluster, n1: psycopg.Connection[Any], k: int) -> None:
    """On the shard, each remote statement's own row shows its text ending with the tag."""
    n2 = cluster["n2"]
    n2.sql("SELECT pg_stat_monitor_reset()")
    select = f"SELECT pad FROM sharded WHERE id = {k}"
    direct = f"UPDATE sharded SET v = v - 1 WHERE id = {k}"
    by_row = f"UPDATE sharded SET v = (random() * 0)::int + v - 1 WHERE id = {k}"
    for sql in (select, direct, by_row):
        n1.execute(sql)
    q_select, q_direct, q_by_row = (coordinator_qid(n1, s) for s in (select, direct, by_row))
    assert shard_texts(n2, "sharded_p1|^FETCH") == {
        f"DECLARE c1 CURSOR FOR\nSELECT pad FROM public.sharded_p1 WHERE ((id = {k}))"
        f"{tag('n1', q_select)}": 1,
        "FETCH 100 FROM c1": 2,
        f"UPDATE public.sharded_p1 SET v = (v - 1) WHERE ((id = {k})){tag('n1', q_direct)}": 1,
        "DECLARE c1 CURSOR FOR\nSELECT id, v, pad, ctid FROM public.sharded_p1"
        f" WHERE ((id = {k})) FOR UPDATE{tag('n1', q_by_row)}": 1,
        f"UPDATE public.sharded_p1 SET v = $2 WHERE ctid = $1{tag('n1', q_by_row)}": 1,
    }


def test_routed_insert_and_copy_arrive_untagged(
        cluster: Cluster, n1: psycopg.Connection[Any]) -> None:
    """Inserts routed through the parent and COPY build their SQL at execution: no tag arrives.

    postgres_fdw's application_name (`%C`: the coordinator's cluster_name) still names it.
    """
    n1.execute("SET postgres_fdw.application_name = 'fdw:%C'")   # before the first connection
    n2 = cluster["n2"]
    n2.sql("SELECT pg_stat_monitor_reset()")
    routed = ids_in(n1, 1, 200_000, 3)
    copied = ids_in(n1, 1, 300_000, 2)
    lines, _ = explain(n1, f"INSERT INTO sharded VALUES ({routed[0]}, 1, 'routed')")
    assert remote_sqls(lines) == []          # the routed INSERT is built at execution
    n1.execute("INSERT INTO sharded SELECT g, 1, 'routed' FROM unnest(%s::int[]) g", (routed,))
    with n1.cursor().copy("COPY sharded (id, v, pad) FROM STDIN") as copy:
        for i in copied:
            copy.write_row((i, 1, "copied"))
    assert n2.sql("SELECT pad, count(*) FROM sharded_p1 WHERE pad IN ('routed', 'copied')"
                  " GROUP BY pad ORDER BY pad") == [("copied", 2), ("routed", 3)]
    rows = n2.sql("SELECT query, sum(calls)::int, sum(rows)::int, application_name"
                  " FROM pg_stat_monitor WHERE query ~ '^INSERT INTO public.sharded_p1'"
                  " GROUP BY query, application_name ORDER BY query")
    assert rows == [
        # COPY: PG15 inserts into a foreign partition one row per statement
        ("INSERT INTO public.sharded_p1(id, v, pad) VALUES ($1, $2, $3)", 2, 2, "fdw:n1"),
        # routed INSERT: one batch of the three rows
        ("INSERT INTO public.sharded_p1(id, v, pad) VALUES ($1, $2, $3), ($4, $5, $6),"
         " ($7, $8, $9)", 1, 3, "fdw:n1"),
    ]


# --- a node outside the cluster: how the name defaults ----------------------------------------

@pytest.fixture(scope="module")
def lone(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[PgServer]:
    """A fourth node, not started, whose only foreign table is ft_n2 (n2's t_local)."""
    server = PgServer(tmp_path_factory.mktemp("lone"))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("settings, coord", [
    ({}, None),
    ({"cluster_name": "'c4'"}, "c4"),
    ({"cluster_name": "'c4'", "pg_stat_monitor.pgsm_node_name": "'n4'"}, "n4"),
])
def test_node_name_defaults_to_cluster_name(cluster: Cluster, lone: PgServer,
                                            settings: dict[str, str], coord: str | None) -> None:
    """pgsm_node_name defaults to cluster_name; with neither set nothing is tagged."""
    for name in ("cluster_name", "pg_stat_monitor.pgsm_node_name"):
        lone.settings.pop(name, None)
    lone.settings.update(settings)
    lone.write_settings()
    lone.start()
    try:
        lone.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_monitor CASCADE")
        lone.sql("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        if not lone.sql("SELECT 1 FROM pg_foreign_server WHERE srvname = 'n2'"):
            lone.sql("CREATE SERVER n2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS"
                     f" (host '127.0.0.1', port '{cluster['n2'].port}', dbname 'postgres')")
            lone.sql("CREATE USER MAPPING FOR postgres SERVER n2 OPTIONS (user 'postgres')")
            lone.sql("CREATE FOREIGN TABLE ft_n2 (id int, v int) SERVER n2"
                     " OPTIONS (table_name 't_local')")
        with lone.connect() as c:
            if "pg_stat_monitor.pgsm_node_name" in settings or coord is None:
                assert c.execute("SELECT current_setting('pg_stat_monitor.pgsm_node_name')"
                                 ).fetchall() == [(coord or "",)]
            lines, qid = explain(c, "SELECT v FROM ft_n2 WHERE id = 1")
        suffix = tag(coord, qid) if coord else ""
        assert remote_sqls(lines) == [f"SELECT v FROM public.t_local WHERE ((id = 1)){suffix}"]
    finally:
        lone.stop()
