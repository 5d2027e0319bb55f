"""Typed access to the extension's settings."""

from __future__ import annotations

from pgsm.errors import UNDEFINED_OBJECT, PgsmError
from pgsm.plpy import Plpy


def get(plpy: Plpy, name: str) -> str:
    """The raw value of pg_stat_monitor.<name> (in its base unit, without a unit suffix)."""
    plan = plpy.prepare("SELECT setting FROM pg_catalog.pg_settings WHERE name = $1", ["text"])
    result = plpy.execute(plan, ["pg_stat_monitor." + name])
    if len(result) == 0:
        raise PgsmError(f"setting pg_stat_monitor.{name} is not defined", UNDEFINED_OBJECT,
                        hint="Load pg_stat_monitor through shared_preload_libraries.")
    return str(result[0]["setting"])


def get_int(plpy: Plpy, name: str) -> int:
    """The value of an integer setting, in its base unit."""
    return int(get(plpy, name))


def node_name(plpy: Plpy) -> str:
    """This node's name in the cluster: pgsm_node_name, or cluster_name when that is empty;
    empty when neither is set."""
    name = get(plpy, "pgsm_node_name")
    if name == "":
        name = str(plpy.execute("SELECT pg_catalog.current_setting('cluster_name') AS v")[0]["v"])
    return name
