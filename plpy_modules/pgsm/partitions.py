"""Daily partitions of the tables kept for pgsm_history_retention days: create ahead, drop
past retention.  Two families: pg_stat_monitor_history (the parent in the extension's schema)
and the coordinator's received fragments (pgsm_internal.pgsm_sdm_received).

The partitions (and each default one) are in pgsm_internal, where no other role can squat
their names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pgsm import settings
from pgsm.catalog import INTERNAL, internal
from pgsm.errors import DATETIME_FIELD_OVERFLOW, PgsmError
from pgsm.plpy import Plpy, qualified

PARENT = "pg_stat_monitor_history"
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Family:
    """A table partitioned by day of bucket_start_time; in_extension_schema: where its parent
    is (else in pgsm_internal, like every partition)."""

    parent: str
    in_extension_schema: bool

    @property
    def prefix(self) -> str:
        return self.parent + "_p"

    @property
    def default(self) -> str:
        return self.parent + "_default"

    def qualified_parent(self, plpy: Plpy, schema: str) -> str:
        return qualified(plpy, schema, self.parent) if self.in_extension_schema \
            else internal(plpy, self.parent)


HISTORY = Family(PARENT, True)
RECEIVED = Family("pgsm_sdm_received", False)
FAMILIES = (HISTORY, RECEIVED)


def partition_name(day: dt.date, family: Family = HISTORY) -> str:
    """The name of a day's partition, e.g. pg_stat_monitor_history_p20261121."""
    return f"{family.prefix}{day.year:04d}{day.month:02d}{day.day:02d}"


def day_of(name: str, family: Family = HISTORY) -> dt.date | None:
    """The day a partition of ours holds, or None for other tables."""
    digits = name[len(family.prefix):]
    if not name.startswith(family.prefix) or len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _existing(plpy: Plpy, schema: str, family: Family) -> dict[dt.date, str]:
    """Our day partitions attached to the parent, by day."""
    plan = plpy.prepare(
        "SELECT c.relname::text AS relname FROM pg_catalog.pg_inherits i"
        " JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass AND c.relnamespace = $2::regnamespace",
        ["text", "text"])
    found: dict[dt.date, str] = {}
    args = [family.qualified_parent(plpy, schema), plpy.quote_ident(INTERNAL)]
    for row in plpy.execute(plan, args):
        day = day_of(row["relname"], family)
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


def _create(plpy: Plpy, schema: str, day: dt.date, family: Family) -> bool:
    """Create a day's partition, moving that day's rows out of the default partition."""
    part = internal(plpy, partition_name(day, family))
    parent = family.qualified_parent(plpy, schema)
    lo, hi = _bounds(day)
    return _with_lock_timeout(plpy, [
        (f"CREATE TABLE {part} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", []),
        (f"WITH moved AS (DELETE FROM {internal(plpy, family.default)}"
         " WHERE bucket_start_time >= $1 AND bucket_start_time < $2 RETURNING *)"
         f" INSERT INTO {part} SELECT * FROM moved", [lo, hi]),
        (f"ALTER TABLE {parent} ATTACH PARTITION {part} FOR VALUES FROM"
         f" ({plpy.quote_literal(lo)}) TO ({plpy.quote_literal(hi)})", []),
    ])


def plan_days(today: dt.date, ahead: int, keep: int) -> tuple[list[dt.date], dt.date]:
    """The days to have partitions for (today and ``ahead`` after it) and the first day kept."""
    try:
        return [today + i * DAY for i in range(ahead + 1)], today - keep * DAY
    except OverflowError:
        raise PgsmError(f"history partitions around {today} are out of range",
                        DATETIME_FIELD_OVERFLOW) from None


def _utc_day(plpy: Plpy, now: Any) -> dt.date:
    """The UTC day of a timestamptz (None: the current time)."""
    plan = plpy.prepare(
        "SELECT extract(year FROM d)::int AS y, extract(month FROM d)::int AS m,"
        " extract(day FROM d)::int AS d"
        " FROM (SELECT (coalesce($1, now()) AT TIME ZONE 'UTC')::date AS d) x", ["timestamptz"])
    row = plpy.execute(plan, [now])[0]
    try:
        return dt.date(row["y"], row["m"], row["d"])
    except ValueError:
        raise PgsmError(f"now is out of range for history partitions: {now}",
                        DATETIME_FIELD_OVERFLOW) from None


def maintain(plpy: Plpy, schema: str, now: Any) -> dict[str, list[str]]:
    """Create today's and the next days' partitions, drop those past retention, for each
    family.

    ``now`` (a timestamptz, None for the current time) makes it testable without waiting days;
    the caller has checked it (see entry.maintain).
    """
    # the export's lock: one maintainer or exporter at a time
    plpy.execute(f"LOCK TABLE {internal(plpy, 'pgsm_export_state')} IN SHARE ROW EXCLUSIVE MODE")
    days, first_kept = plan_days(_utc_day(plpy, now),
                                 settings.get_int(plpy, "pgsm_history_days_ahead"),
                                 settings.get_int(plpy, "pgsm_history_retention"))
    done: dict[str, list[str]] = {"created": [], "dropped": []}
    for family in FAMILIES:
        created, dropped = _maintain_family(plpy, schema, family, days, first_kept)
        done["created"] += created
        done["dropped"] += dropped
    return done


def _maintain_family(plpy: Plpy, schema: str, family: Family, days: list[dt.date],
                     first_kept: dt.date) -> tuple[list[str], list[str]]:
    existing = _existing(plpy, schema, family)
    created = [partition_name(day, family) for day in days
               if day not in existing and _create(plpy, schema, day, family)]
    dropped = []
    for day, name in sorted(existing.items()):
        drop = f"DROP TABLE {internal(plpy, name)}"
        if day < first_kept and _with_lock_timeout(plpy, [(drop, [])]):
            dropped.append(name)
    purge = plpy.prepare(
        f"DELETE FROM {internal(plpy, family.default)} WHERE bucket_start_time < $1",
        ["timestamptz"])
    plpy.execute(purge, [_bounds(first_kept)[0]])
    return created, dropped
