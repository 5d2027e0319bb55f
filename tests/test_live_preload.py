"""Without shared_preload_libraries nothing works; with it, shared memory stays small."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory, error_of, one
from pgserver import PgServer

MIB = 1024 * 1024

CALLS = [
    "SELECT * FROM pg_stat_monitor",
    "SELECT * FROM pg_stat_monitor_info",
    "SELECT pg_stat_monitor_version()",
    "SELECT pg_stat_monitor_reset()",
    "SELECT * FROM histogram(0, 0) AS a(range text, freq int, bar text)",
    "SELECT get_histogram_timings()",
    "SELECT range()",
    "SELECT decode_error_level(21)",
    "SELECT get_cmd_type(1)",
    "SELECT * FROM pg_stat_monitor_internal(true)",
]


@pytest.fixture(scope="module")
def bare_server(make_server: ServerFactory) -> PgServer:
    """A server that does not preload the library, with the extension created afterwards."""
    server = make_server(settings={"shared_preload_libraries": "''"}, extension=False)
    server.sql("CREATE EXTENSION pg_stat_monitor CASCADE")
    return server


@pytest.mark.parametrize("sql", CALLS)
def test_without_preload_every_entry_point_fails_with_55000(
        bare_server: PgServer, sql: str) -> None:
    """Without the library preloaded: SQLSTATE 55000 naming shared_preload_libraries."""
    with bare_server.connect() as conn:
        err = error_of(conn, sql)
    assert err.sqlstate == "55000"
    assert "shared_preload_libraries" in (err.diag.message_primary or "")


def shmem_total(conn: psycopg.Connection[Any]) -> int:
    """The sum of allocated_size over pg_shmem_allocations."""
    return int(one(conn, "SELECT sum(allocated_size) FROM pg_shmem_allocations"))


def test_shared_memory_at_defaults_is_at_most_3_mib(
        server: PgServer, bare_server: PgServer) -> None:
    """The library adds at most 3 MiB of shared memory at the defaults, for >= 3000 entries."""
    with server.connect() as with_lib, bare_server.connect() as without_lib:
        added = shmem_total(with_lib) - shmem_total(without_lib)
        max_entries = one(with_lib, "SELECT max_entries FROM pg_stat_monitor_info")
    assert 0 < added <= 3 * MIB
    assert max_entries >= 3000
