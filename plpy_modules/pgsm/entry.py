"""The entry points of the SQL functions written in PL/Python.

Each finds the extension's schema in the catalog, checks its arguments, and raises every
error through plpy with a SQLSTATE: a bad argument is a SQL error, never a Python traceback
or a silent default.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn, TypeVar

from pgsm import (
    catalog,
    export,
    histogram,
    nodes,
    partitions,
    receiver,
    sender,
    truncate,
    worker,
)
from pgsm.errors import (
    DATETIME_FIELD_OVERFLOW,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    NULL_VALUE_NOT_ALLOWED,
    PgsmError,
)
from pgsm.plpy import Plpy

T = TypeVar("T")

# how far ahead of the clock maintenance may be told "now" is without force => true
MAX_AHEAD = "1 day"


def raise_through(plpy: Plpy, error: PgsmError) -> NoReturn:
    """Raise a PgsmError as the SQL error it describes."""
    plpy.error(error.message, **error.fields())


def run(plpy: Plpy, work: Callable[[], T]) -> T:
    """Run work; its PgsmError becomes a SQL error, and so does any other Python exception
    (an internal error, XX000), so no traceback is ever the message.  SQL errors from plpy
    keep their own SQLSTATE."""
    try:
        return work()
    except (plpy.Error, plpy.SPIError):
        raise
    except PgsmError as error:
        raise_through(plpy, error)
    except Exception as error:  # a bug: say what it was, in the detail
        plpy.error("pg_stat_monitor internal error", sqlstate=INTERNAL_ERROR,
                   detail=f"{type(error).__name__}: {error}")


def export_now(plpy: Plpy) -> int:
    """pg_stat_monitor_export()."""
    return run(plpy, lambda: export.export(plpy, catalog.extension_schema(plpy)))


def worker_tick(plpy: Plpy) -> int:
    """pgsm_internal.pgsm_worker_tick()."""
    return run(plpy, lambda: worker.tick(plpy, catalog.extension_schema(plpy)))


def worker_drain(plpy: Plpy) -> int:
    """pgsm_internal.pgsm_worker_drain()."""
    return run(plpy, lambda: worker.drain(plpy))


def worker_send(plpy: Plpy) -> int:
    """pgsm_internal.pgsm_worker_send()."""
    return run(plpy, lambda: worker.send(plpy))


def histogram_rows(plpy: Plpy, bucket: int | None, queryid: int | None
                   ) -> list[tuple[str, int, str]]:
    """histogram(bucket, queryid)."""
    return run(plpy, lambda: list(histogram.rows(
        plpy, catalog.extension_schema(plpy), bucket, queryid)))


def cut_query(plpy: Plpy, query: str, max_bytes: int, was_cut: bool) -> str:
    """pgsm_internal.pgsm_cut_query(query, max_bytes, was_cut)."""
    return run(plpy, lambda: truncate.cut_query(query, max_bytes, was_cut))


def check_maintain_args(plpy: Plpy, now: Any, force: bool | None) -> None:
    """NULL arguments, an infinite now, or one more than MAX_AHEAD ahead unless forced."""
    if now is None or force is None:
        raise PgsmError(f"{'now' if now is None else 'force'} must not be null",
                        NULL_VALUE_NOT_ALLOWED)
    plan = plpy.prepare(
        "SELECT pg_catalog.isfinite($1) AS finite,"
        f" $1 > pg_catalog.clock_timestamp() + interval '{MAX_AHEAD}' AS ahead",
        ["timestamptz"])
    row = plpy.execute(plan, [now])[0]
    if not row["finite"]:
        raise PgsmError(f"now must be a finite time, not {now}", DATETIME_FIELD_OVERFLOW)
    if row["ahead"] and not force:
        raise PgsmError(
            f"now is more than {MAX_AHEAD} ahead of the clock: {now}", INVALID_PARAMETER_VALUE,
            detail="Maintenance as of that time would drop the partitions past retention"
                   " counted from it, which may be the whole history.",
            hint="Call pg_stat_monitor_maintain(now, force => true) if that is what you want.")


def maintain(plpy: Plpy, now: Any, force: bool | None) -> list[tuple[str, str]]:
    """pg_stat_monitor_maintain(now, force): (action, partition) rows."""
    def work() -> list[tuple[str, str]]:
        check_maintain_args(plpy, now, force)
        done = partitions.maintain(plpy, catalog.extension_schema(plpy), now)
        return [(action, name) for action, names in done.items() for name in names]
    return run(plpy, work)


def sdm_receive(plpy: Plpy, payload: bytes | None) -> int:
    """pg_stat_monitor_sdm_receive(payload): entries applied."""
    return run(plpy, lambda: receiver.receive(plpy, payload))


def sdm_send(plpy: Plpy, in_block: bool) -> int:
    """pg_stat_monitor_sdm_send(): entries delivered."""
    return run(plpy, lambda: sender.send_now(plpy, bool(in_block)))


def sdm_add_node(plpy: Plpy, name: str | None, conninfo: str | None) -> None:
    """pg_stat_monitor_sdm_add_node(name, conninfo)."""
    run(plpy, lambda: nodes.add(plpy, name, conninfo))
