"""From each upstream release to this one, as a user does it: upstream installed and used, the
library replaced and the server restarted (upstream's view reads the live statistics until the
update), then ALTER EXTENSION pg_stat_monitor UPDATE TO '2.4' gives the catalog of a fresh
install, the 65-column view, the export and history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fixtures import ServerFactory, one, rows
from upgrade_helpers import (OUR_SETTINGS, UPSTREAM_RELEASES, PrivateRoot, catalog_snapshot,
                             extversion, start_upstream, swap_to_ours, view_columns)

MARK = "SELECT 'pgsm upgrade probe', %s::int"


@pytest.fixture(scope="module")
def fresh_snapshot(make_server: ServerFactory) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog snapshot of a fresh CREATE EXTENSION of this release."""
    server = make_server(OUR_SETTINGS)
    with server.connect() as c:
        return catalog_snapshot(c)


def probe_calls(conn: psycopg.Connection[Any]) -> int:
    """The calls of the probe statement the pg_stat_monitor view shows (all its buckets)."""
    return int(one(conn, "SELECT coalesce(sum(calls), 0) FROM pg_stat_monitor"
                         " WHERE query LIKE 'SELECT ''pgsm upgrade probe''%'"))


def run_probe(conn: psycopg.Connection[Any], times: int) -> None:
    """Run the probe statement times times."""
    for i in range(times):
        conn.execute(MARK, [i])


def shape(conn: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    """Names and type oids of the pg_stat_monitor view's columns."""
    cur = conn.execute("SELECT * FROM pg_stat_monitor LIMIT 0")
    assert cur.description is not None
    return [(col.name, col.type_code) for col in cur.description]


@pytest.mark.parametrize("version", list(UPSTREAM_RELEASES))
def test_update_from_upstream_release(version: str, private_root: PrivateRoot, tmp_path: Path,
                                      fresh_snapshot: dict[str, list[tuple[Any, ...]]]) -> None:
    """Upstream's view keeps reading after the swap; after the update the catalog equals a
    fresh install's, the view has 65 columns and the export writes history."""
    server = start_upstream(private_root, version, tmp_path, ["postgres"])
    try:
        with server.connect() as c:
            assert extversion(c) == version
            run_probe(c, 2)
            assert probe_calls(c) == 2
            upstream_shape = shape(c)
        swap_to_ours(private_root, server)
        with server.connect() as c:
            # upstream's SQL objects, this library: the live statistics in upstream's shape
            assert extversion(c) == version
            assert one(c, "SELECT pg_stat_monitor_version()") == "2.4.0"
            assert shape(c) == upstream_shape
            assert probe_calls(c) == 0          # upstream kept nothing across the restart
            run_probe(c, 3)
            assert probe_calls(c) == 3
            c.execute("CREATE EXTENSION plpython3u")
            c.execute("ALTER EXTENSION pg_stat_monitor UPDATE TO '2.4'")
            assert extversion(c) == "2.4"
            assert catalog_snapshot(c) == fresh_snapshot
            assert view_columns(c) == 65
            assert probe_calls(c) == 3
            time.sleep(1.2)     # the probe's 1-second bucket is finished
            assert one(c, "SELECT pg_stat_monitor_export()") > 0
            assert rows(c, "SELECT sum(calls)::int FROM pg_stat_monitor_history"
                           " WHERE query LIKE 'SELECT ''pgsm upgrade probe''%'") == [(3,)]
    finally:
        server.cleanup()
