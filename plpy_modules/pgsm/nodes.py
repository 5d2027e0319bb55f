"""How a shard reaches a coordinator named in a tag: only through its own configuration.

First the node registry (pgsm_internal.pgsm_sdm_nodes: name -> conninfo, superusers only),
else the postgres_fdw foreign server of that name, if a superuser owns it, with the current
role's user mapping (or the PUBLIC one), as postgres_fdw itself would connect.  A server a
plain role made (and so its options and mappings) is never used: the sender runs as a
superuser.  Nothing in the tag but the name is used, and a name that is not a valid node name
is never looked up.
"""

from __future__ import annotations

from typing import Any

from pgsm import transport
from pgsm.catalog import internal
from pgsm.errors import INVALID_PARAMETER_VALUE, PgsmError
from pgsm.plpy import Plpy

# libpq settings the sender decides itself, whatever a server's options say
OWN_OPTIONS = {"replication", "client_encoding", "options", "application_name",
               "fallback_application_name", "connect_timeout", "keepalives", "keepalives_idle",
               "keepalives_interval", "keepalives_count", "tcp_user_timeout"}
APPLICATION_NAME = "pg_stat_monitor sender"


class Unresolved(Exception):
    """A node name this node has no way to reach; the message says why."""


def _libpq_keywords() -> set[str]:
    from psycopg import pq
    return {o.keyword.decode() for o in pq.Conninfo.get_defaults()} - OWN_OPTIONS


def _options(pairs: Any) -> dict[str, str]:
    """key=value option lists of the catalog (NULL: none) as a dict."""
    return dict(str(p).split("=", 1) for p in (pairs or []))


def conninfo(plpy: Plpy, name: str) -> str:
    """The libpq conninfo (without the sender's own settings) of node name; Unresolved if
    there is none."""
    if transport.NODE_NAME.fullmatch(name) is None:
        raise Unresolved(f"\"{name[:80]}\" is not a valid node name")
    found = plpy.execute(plpy.prepare(
        f"SELECT conninfo FROM {internal(plpy, 'pgsm_sdm_nodes')} WHERE node_name = $1",
        ["text"]), [name])
    if len(found) > 0:
        return str(found[0]["conninfo"])
    server = plpy.execute(plpy.prepare(
        "SELECT s.srvoptions, w.fdwname::text AS fdw, m.umoptions, m.umuser IS NOT NULL AS mapped,"
        "       o.rolsuper AS trusted"
        " FROM pg_catalog.pg_foreign_server s"
        " JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
        " JOIN pg_catalog.pg_roles o ON o.oid = s.srvowner"
        " LEFT JOIN LATERAL (SELECT u.umoptions, u.umuser FROM pg_catalog.pg_user_mapping u"
        "   WHERE u.umserver = s.oid"
        "     AND u.umuser IN (0, pg_catalog.to_regrole(current_user::text)::oid)"
        "   ORDER BY u.umuser DESC LIMIT 1) m ON true"
        " WHERE s.srvname = $1", ["text"]), [name])
    if len(server) == 0:
        raise Unresolved(f"unknown node \"{name}\": it is not in pg_stat_monitor_sdm_nodes and"
                         " no foreign server has that name")
    row = server[0]
    if row["fdw"] != "postgres_fdw":
        raise Unresolved(f"foreign server \"{name}\" does not use postgres_fdw")
    if not row["trusted"]:
        raise Unresolved(f"foreign server \"{name}\" is not owned by a superuser")
    if not row["mapped"]:
        raise Unresolved(f"no user mapping for the current role on foreign server \"{name}\"")
    from psycopg.conninfo import make_conninfo
    keywords = _libpq_keywords()
    options = {k: v for k, v in {**_options(row["srvoptions"]), **_options(row["umoptions"])}
               .items() if k in keywords}
    return make_conninfo("", **options)


def connection_string(base: str, timeout_s: int, statement_timeout_ms: int) -> str:
    """base with the sender's own settings: connect and statement timeouts, TCP keepalives and
    a user timeout (a coordinator that vanishes mid-call is given up within seconds, not
    TCP's minutes), its name."""
    from psycopg.conninfo import make_conninfo
    return make_conninfo(base, connect_timeout=str(timeout_s), application_name=APPLICATION_NAME,
                         options=f"-c statement_timeout={statement_timeout_ms}",
                         keepalives="1", keepalives_idle="5", keepalives_interval="2",
                         keepalives_count="3", tcp_user_timeout=str(statement_timeout_ms + 5000))


def add(plpy: Plpy, name: str | None, info: str | None) -> None:
    """pg_stat_monitor_sdm_add_node(name, conninfo): add or replace a registry entry."""
    if name is None or info is None:
        raise PgsmError(f"{'name' if name is None else 'conninfo'} must not be null", "22004")
    if transport.NODE_NAME.fullmatch(name) is None:
        raise PgsmError(f"\"{name[:80]}\" is not a valid node name", INVALID_PARAMETER_VALUE,
                        detail="A node name is 1 to 63 letters, digits, '_', '.' or '-'.")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict
    try:
        conninfo_to_dict(info)
    except ProgrammingError as error:
        raise PgsmError("invalid conninfo", INVALID_PARAMETER_VALUE,
                        detail=f"{str(error).strip()}.") from None
    plpy.execute(plpy.prepare(
        f"INSERT INTO {internal(plpy, 'pgsm_sdm_nodes')} (node_name, conninfo) VALUES ($1, $2)"
        " ON CONFLICT (node_name) DO UPDATE SET conninfo = excluded.conninfo",
        ["text", "text"]), [name, info])
