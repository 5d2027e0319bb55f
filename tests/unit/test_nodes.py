"""nodes.conninfo without a server: the registry first, else a postgres_fdw server and mapping."""

from __future__ import annotations

from typing import Any, Sequence

import pytest

from fakeplpy import FakePlpy
from pgsm import nodes

SERVER = {"srvoptions": ["host=10.0.0.2", "port=5433", "dbname=app", "async_capable=true",
                         "batch_size=10", "options=-c work_mem=1GB", "connect_timeout=60"],
          "fdw": "postgres_fdw", "umoptions": ["user=sender", "password=s3cret"], "mapped": True,
          "trusted": True}


def catalog(registry: list[dict[str, Any]], servers: list[dict[str, Any]]) -> FakePlpy:
    """A plpy whose registry and foreign-server lookups return the given rows."""
    def answer(query: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        if "pgsm_sdm_nodes" in query:
            return registry
        if "pg_foreign_server" in query:
            return servers
        raise AssertionError(query)
    return FakePlpy(answer)


def test_a_registry_entry_is_used_as_is() -> None:
    """The registry's conninfo, even when a server of that name exists."""
    plpy = catalog([{"conninfo": "host=reg port=1"}], [SERVER])
    assert nodes.conninfo(plpy, "n1") == "host=reg port=1"
    assert not any("pg_foreign_server" in q for q in plpy.queries)


def test_a_foreign_server_gives_its_libpq_options_and_the_mappings() -> None:
    """host, port, dbname of the server, user and password of the mapping; postgres_fdw's own
    options and the settings the sender decides (options, connect_timeout) are left out."""
    info = nodes.conninfo(catalog([], [SERVER]), "n1")
    assert info == "host=10.0.0.2 port=5433 dbname=app user=sender password=s3cret"
    full = nodes.connection_string(info, 3, 10000)
    assert "connect_timeout=3" in full and "statement_timeout=10000" in full
    assert "keepalives=1" in full and "tcp_user_timeout=15000" in full
    assert "work_mem" not in full


@pytest.mark.parametrize(("name", "servers", "why"), [
    ("nx", [], 'unknown node "nx"'),
    ("ny", [dict(SERVER, fdw="file_fdw")], 'foreign server "ny" does not use postgres_fdw'),
    ("nz", [dict(SERVER, mapped=False, umoptions=None)], "no user mapping"),
    ("nw", [dict(SERVER, trusted=False)], 'foreign server "nw" is not owned by a superuser'),
    ("n 1", [SERVER], "is not a valid node name"),
    ("x" * 64, [SERVER], "is not a valid node name"),
])
def test_names_without_a_way_to_reach_them_are_unresolved(
        name: str, servers: list[dict[str, Any]], why: str) -> None:
    """No registry entry and no usable postgres_fdw server: Unresolved, saying why."""
    with pytest.raises(nodes.Unresolved) as info:
        nodes.conninfo(catalog([], servers), name)
    assert why in str(info.value)
