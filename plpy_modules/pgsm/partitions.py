"""Daily partitions of pg_stat_monitor_history: create ahead, drop past retention."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pgsm import settings
from pgsm.plpy import Plpy, qualified

PARENT = "pg_stat_monitor_history"
DEFAULT = PARENT + "_default"
PREFIX = PARENT + "_p"
DAY = dt.timedelta(days=1)


def partition_name(day: dt.date) -> str:
    """The name of a day's partition, e.g. pg_stat_monitor_history_p20261121."""
    return f"{PREFIX}{day:%Y%m%d}"


def day_of(name: str) -> dt.date | None:
    """The day a partition of ours holds, or None for other tables."""
    if not name.startswith(PREFIX):
        return None
    try:
        return dt.datetime.strptime(name[len(PREFIX):], "%Y%m%d").date()
    except ValueError:
        return None


def _existing(plpy: Plpy, schema: str) -> dict[dt.date, str]:
    plan = plpy.prepare(
        "SELECT c.relname FROM pg_catalog.pg_inherits i"
        " JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass", ["text"])
    found: dict[dt.date, str] = {}
    for row in plpy.execute(plan, [qualified(plpy, schema, PARENT)]):
        day = day_of(row["relname"])
        if day is not None:
            found[day] = row["relname"]
    return found


def _bounds(day: dt.date) -> tuple[str, str]:
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    return start.isoformat(), (start + DAY).isoformat()


# DDL on the partitioned table waits at most this long for readers of the view: a
# partition that could not be made or dropped now is tried again at the next pass
DDL_LOCK_TIMEOUT = "200ms"


def _with_lock_timeout(plpy: Plpy, statements: list[tuple[str, list[Any]]]) -> bool:
    """Run statements in a subtransaction with a short lock timeout; False if a lock timed out."""
    old = plpy.execute("SELECT pg_catalog.current_setting('lock_timeout') AS v")[0]["v"]
    setter = plpy.prepare("SELECT pg_catalog.set_config('lock_timeout', $1, true)", ["text"])
    plpy.execute(setter, [DDL_LOCK_TIMEOUT])
    try:
        with plpy.subtransaction():
            for sql, args in statements:
                if args:
                    plan = plpy.prepare(sql, ["timestamptz"] * len(args))
                    plpy.execute(plan, args)
                else:
                    plpy.execute(sql)
        return True
    except plpy.spiexceptions.LockNotAvailable:
        plpy.notice("pg_stat_monitor history maintenance postponed: a lock is busy")
        return False
    finally:
        plpy.execute(setter, [old])


def _create(plpy: Plpy, schema: str, day: dt.date) -> bool:
    """Create a day's partition, moving that day's rows out of the default partition."""
    part = qualified(plpy, schema, partition_name(day))
    parent = qualified(plpy, schema, PARENT)
    lo, hi = _bounds(day)
    return _with_lock_timeout(plpy, [
        (f"CREATE TABLE {part} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", []),
        (f"WITH moved AS (DELETE FROM {qualified(plpy, schema, DEFAULT)}"
         " WHERE bucket_start_time >= $1 AND bucket_start_time < $2 RETURNING *)"
         f" INSERT INTO {part} SELECT * FROM moved", [lo, hi]),
        (f"ALTER TABLE {parent} ATTACH PARTITION {part} FOR VALUES FROM"
         f" ({plpy.quote_literal(lo)}) TO ({plpy.quote_literal(hi)})", []),
    ])


def maintain(plpy: Plpy, schema: str, now: Any) -> dict[str, list[str]]:
    """Create today's and the next days' partitions, drop those past retention.

    ``now`` (a timestamptz, None for the current time) makes it testable without waiting days.
    """
    # the export's lock: one maintainer or exporter at a time
    plpy.execute(f"LOCK TABLE {qualified(plpy, schema, 'pgsm_export_state')}"
                 " IN SHARE ROW EXCLUSIVE MODE")
    if now is None:
        now = plpy.execute("SELECT now() AS t")[0]["t"]
    today_plan = plpy.prepare(
        "SELECT ($1::timestamptz AT TIME ZONE 'UTC')::date::text AS d", ["timestamptz"])
    today = dt.date.fromisoformat(plpy.execute(today_plan, [now])[0]["d"])
    ahead = settings.get_int(plpy, "pgsm_history_days_ahead")
    keep = settings.get_int(plpy, "pgsm_history_retention")
    existing = _existing(plpy, schema)
    created, dropped = [], []
    for i in range(ahead + 1):
        day = today + i * DAY
        if day not in existing and _create(plpy, schema, day):
            created.append(partition_name(day))
    first_kept = today - keep * DAY
    for day, name in sorted(existing.items()):
        drop = f"DROP TABLE {qualified(plpy, schema, name)}"
        if day < first_kept and _with_lock_timeout(plpy, [(drop, [])]):
            dropped.append(name)
    purge = plpy.prepare(
        f"DELETE FROM {qualified(plpy, schema, DEFAULT)} WHERE bucket_start_time < $1",
        ["timestamptz"])
    plpy.execute(purge, [_bounds(first_kept)[0]])
    return {"created": created, "dropped": dropped}
