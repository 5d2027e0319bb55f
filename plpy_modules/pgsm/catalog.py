"""Where the extension's objects are: its schema (from the catalog) and the private schema."""

from __future__ import annotations

from pgsm.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, PgsmError
from pgsm.plpy import Plpy, qualified

# our code's own objects: only the extension's owner may create in it (see the SQL script)
INTERNAL = "pgsm_internal"


def extension_schema(plpy: Plpy) -> str:
    """The schema pg_stat_monitor was created in, unquoted, as the catalog has it."""
    result = plpy.execute(
        "SELECT n.nspname::text AS name FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_stat_monitor'")
    if len(result) == 0:
        raise PgsmError("extension pg_stat_monitor is not installed in this database",
                        OBJECT_NOT_IN_PREREQUISITE_STATE)
    return str(result[0]["name"])


def internal(plpy: Plpy, name: str) -> str:
    """``pgsm_internal.name``, quoted."""
    return qualified(plpy, INTERNAL, name)
