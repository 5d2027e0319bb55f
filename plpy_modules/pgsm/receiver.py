"""``pg_stat_monitor_sdm_receive(payload)``: a coordinator takes in a shard's batch.

Exactly once per outbox entry: pgsm_sdm_senders keeps, per sender and stream (a sender's
outbox), the highest outbox id applied from it.  A batch's rows
at or below it were applied before (a resend after a lost acknowledgement) and are skipped;
the rest are merged with one set-based INSERT ... ON CONFLICT, from arrays, in the caller's
transaction: the sender deletes them from its outbox only once that transaction committed.
The (sender, stream) row is locked first, so two deliveries of one batch apply it once.
"""

from __future__ import annotations

from typing import Any

from pgsm import settings, transport
from pgsm.catalog import internal
from pgsm.errors import (
    INVALID_PARAMETER_VALUE,
    NULL_VALUE_NOT_ALLOWED,
    OBJECT_NOT_IN_PREREQUISITE_STATE,
    PgsmError,
)
from pgsm.plpy import Plpy


def sql_type(kind: str, bounds: tuple[int, int]) -> str:
    """The SQL type of a wire field's array."""
    if kind == "float":
        return "float8"
    if kind == "index":
        return "int"
    return {transport.OID: "oid", transport.WAL_BYTES: "numeric"}.get(bounds, "bigint")


def _merge_sql(plpy: Plpy) -> str:
    """INSERT ... ON CONFLICT of a batch's rows: $1 sender, $2 the coordinator's bucket
    length, $3 texts, $4.. one array per wire field.  Rows of one entry and bucket are summed
    first (one statement may touch a row once)."""
    q = plpy.quote_ident
    calls = q(transport.CALLS)
    arrays = ", ".join(f"${i + 4}::{sql_type(kind, bounds)}[]"
                       for i, (_, kind, bounds, _) in enumerate(transport.ROW_FIELDS))
    names = ", ".join(q(field[0]) for field in transport.ROW_FIELDS)
    keys = [q(name) for name, _, _, how in transport.ROW_FIELDS if how == "key"]
    grouped: dict[str, str] = {}    # column -> its value over the rows u of one entry
    merged: dict[str, str] = {}     # column -> its value after a conflict
    for name, kind, bounds, how in transport.ROW_FIELDS:
        col = q(name)
        cast = "" if kind == "float" else f"::{sql_type(kind, bounds)}"
        if how == "sum":
            grouped[col] = f"sum(u.{col}){cast}"
            merged[col] = f"t.{col} + excluded.{col}"
        elif how in ("min", "max"):
            grouped[col] = f"coalesce({how}(u.{col}) FILTER (WHERE u.{calls} > 0), 0)"
            merged[col] = (f"CASE WHEN excluded.{calls} = 0 THEN t.{col}"
                           f" WHEN t.{calls} = 0 THEN excluded.{col}"
                           f" ELSE {'least' if how == 'min' else 'greatest'}(t.{col},"
                           f" excluded.{col}) END")
    merged["query"] = "excluded.query"
    return f"""
        INSERT INTO {internal(plpy, 'pgsm_sdm_received')} AS t
            (node, bucket_start_time, {", ".join(keys)}, query, {", ".join(grouped)})
        SELECT $1, pg_catalog.date_bin($2,
                   'epoch'::timestamptz + u.bucket_start * interval '1 microsecond',
                   'epoch'::timestamptz),
               {", ".join(f"u.{k}" for k in keys)},
               (pg_catalog.array_agg(($3::text[])[u.text + 1] ORDER BY u.id DESC))[1],
               {", ".join(grouped.values())}
        FROM unnest({arrays}) AS u({names})
        GROUP BY 2, {", ".join(str(i + 3) for i in range(len(keys)))}
        ON CONFLICT (bucket_start_time, parent_queryid, node, {", ".join(
            k for k in keys if k != q("parent_queryid"))})
        DO UPDATE SET {", ".join(f"{col} = {value}" for col, value in merged.items())}
    """


def _my_name(plpy: Plpy) -> str:
    name = settings.node_name(plpy)
    if name == "":
        raise PgsmError("this node has no name in the cluster", OBJECT_NOT_IN_PREREQUISITE_STATE,
                        detail="A batch names the node it is for; this one has no name.",
                        hint="Set pg_stat_monitor.pgsm_node_name (or cluster_name).")
    return name


def receive(plpy: Plpy, payload: bytes | None) -> int:
    """Check and merge one batch; return the number of entries applied (0 for a resend)."""
    if payload is None:
        raise PgsmError("payload must not be null", NULL_VALUE_NOT_ALLOWED)
    me = _my_name(plpy)
    batch = transport.decode(payload)
    if batch.coordinator != me:
        raise PgsmError(
            f"batch is addressed to node \"{batch.coordinator}\", not to this node \"{me}\"",
            INVALID_PARAMETER_VALUE,
            detail=f"Node \"{batch.sender}\" resolved that name to this server.",
            hint="Check the node registry or the postgres_fdw server of that name on the"
                 " sender.")
    senders = internal(plpy, "pgsm_sdm_senders")
    plpy.execute(plpy.prepare(
        f"INSERT INTO {senders} (node, stream) VALUES ($1, $2)"
        " ON CONFLICT (node, stream) DO NOTHING", ["text", "text"]), [batch.sender, batch.stream])
    last = int(plpy.execute(plpy.prepare(
        f"SELECT last_applied FROM {senders} WHERE node = $1 AND stream = $2 FOR UPDATE",
        ["text", "text"]), [batch.sender, batch.stream])[0]["last_applied"])
    fresh = [i for i, row_id in enumerate(batch.columns["id"]) if row_id > last]
    if fresh:
        _merge(plpy, batch, fresh)
    plpy.execute(plpy.prepare(
        f"UPDATE {senders} SET last_applied = $3,"
        " entries_received = entries_received + $4, batches = batches + 1,"
        " bytes_received = bytes_received + $5, last_received_at = pg_catalog.now()"
        " WHERE node = $1 AND stream = $2", ["text", "text", "bigint", "bigint", "bigint"]),
        [batch.sender, batch.stream, max(last, batch.seq), len(fresh), len(payload)])
    return len(fresh)


def _merge(plpy: Plpy, batch: transport.Batch, fresh: list[int]) -> None:
    """Merge the rows at positions fresh into the received fragments."""
    bucket = f"{settings.get_int(plpy, 'pgsm_bucket_time')} seconds"
    arrays: list[Any] = []
    types = ["text", "interval", "text[]"]
    for name, kind, bounds, _ in transport.ROW_FIELDS:
        column = batch.columns[name]
        arrays.append([column[i] for i in fresh])
        types.append(sql_type(kind, bounds) + "[]")
    plpy.execute(plpy.prepare(_merge_sql(plpy), types), [batch.sender, bucket, batch.texts]
                 + arrays)
