"""Several real PostgreSQL 15 nodes on loopback, sharded with postgres_fdw (the Shardman layout).

Every node preloads the library, has postgres_fdw and a foreign server named after each other
node, and the hash-partitioned table `sharded`: partition r is a plain table on node r and a
foreign table on the others, so any node can act as coordinator.

A test module uses it with `from cluster import cluster_fixture  # noqa: F401` (the fixture is
named `cluster`; conftest.py need not know it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from pgserver import PgServer

NODE_NAMES = ("n1", "n2", "n3")
SHARDED_ROWS = 3000
FDW_BATCH_SIZE = 10


def node_settings(name: str) -> dict[str, str]:
    """Settings of one node: its name, as pgsm_node_name and (its default) cluster_name."""
    return {
        "cluster_name": f"'{name}'",
        "pg_stat_monitor.pgsm_node_name": f"'{name}'",
    }


class Cluster:
    """Nodes by name, each a PgServer; partition r of `sharded` lives on the r-th node."""

    def __init__(self, base: Path, names: tuple[str, ...] = NODE_NAMES) -> None:
        self.names = names
        with ThreadPoolExecutor(len(names)) as pool:   # initdb takes most of the start time
            servers = pool.map(lambda n: PgServer(base / n, node_settings(n)), names)
        self.nodes: dict[str, PgServer] = dict(zip(names, servers))

    def __getitem__(self, name: str) -> PgServer:
        return self.nodes[name]

    def home(self, remainder: int) -> str:
        """The node that stores partition `sharded_p<remainder>`."""
        return self.names[remainder]

    def start(self) -> "Cluster":
        """Start every node, then create the extensions, servers and tables on each."""
        with ThreadPoolExecutor(len(self.names)) as pool:
            list(pool.map(lambda s: s.start(), self.nodes.values()))
        for name in self.names:
            self.nodes[name].sql(self.schema_sql(name))
        self.load()
        return self

    def schema_sql(self, me: str) -> str:
        """The set-up script of one node (one multi-statement string)."""
        parts = [
            "CREATE EXTENSION pg_stat_monitor CASCADE",
            "CREATE EXTENSION postgres_fdw",
        ]
        for other in self.names:
            if other == me:
                continue
            parts += [
                f"CREATE SERVER {other} FOREIGN DATA WRAPPER postgres_fdw OPTIONS"
                f" (host '127.0.0.1', port '{self.nodes[other].port}', dbname 'postgres',"
                f" async_capable 'true', batch_size '{FDW_BATCH_SIZE}')",
                f"CREATE USER MAPPING FOR postgres SERVER {other} OPTIONS (user 'postgres')",
                f"CREATE FOREIGN TABLE ft_{other} (id int, v int) SERVER {other}"
                " OPTIONS (table_name 't_local')",
            ]
        # no primary key on the parent: PostgreSQL refuses unique indexes over foreign partitions
        parts.append("CREATE TABLE sharded (id int NOT NULL, v int, pad text)"
                     " PARTITION BY HASH (id)")
        for r in range(len(self.names)):
            bounds = f"FOR VALUES WITH (MODULUS {len(self.names)}, REMAINDER {r})"
            if self.home(r) == me:
                parts.append(f"CREATE TABLE sharded_p{r} PARTITION OF sharded"
                             f" (PRIMARY KEY (id)) {bounds}")
            else:
                parts.append(f"CREATE FOREIGN TABLE sharded_p{r} PARTITION OF sharded {bounds}"
                             f" SERVER {self.home(r)} OPTIONS (table_name 'sharded_p{r}')")
        parts.append("CREATE TABLE t_local (id int PRIMARY KEY, v int)")
        return ";\n".join(parts)

    def load(self) -> None:
        """Fill `sharded` through the first node (routed to every shard) and each `t_local`."""
        first = self.nodes[self.names[0]]
        first.sql(f"INSERT INTO sharded SELECT g, g % 100, repeat('x', 20)"
                  f" FROM generate_series(1, {SHARDED_ROWS}) g")
        for server in self.nodes.values():
            server.sql("INSERT INTO t_local SELECT g, g % 7"
                       f" FROM generate_series(1, {SHARDED_ROWS}) g")
        for name, server in self.nodes.items():
            # a bare ANALYZE skips foreign tables; their sizes make the planner push joins down
            foreign = [f"sharded_p{r}" for r in range(len(self.names)) if self.home(r) != name]
            foreign += [f"ft_{other}" for other in self.names if other != name]
            server.sql("ANALYZE; ANALYZE " + ", ".join(foreign))

    def cleanup(self) -> None:
        """Stop every node and remove its data directory."""
        for server in self.nodes.values():
            server.cleanup()


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three started nodes n1, n2, n3 with `sharded` loaded; removed after the module."""
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.cleanup()
