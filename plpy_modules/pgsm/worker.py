"""What the background worker does on each wake, in three transactions, each failing alone.

``pgsm_worker_tick()`` exports finished buckets (which also keeps the partitions of history and
of received fragments in shape) unless pg_cron does it.  ``pgsm_worker_drain()`` drains the
fragment table into the outbox every pgsm_sdm_send_interval.  ``pgsm_worker_send()`` then sends
the coordinators what is pending: a fragment leaves within one send interval of its execution,
a coordinator that is down (connect and statement timeouts) holds up nothing committed before,
and a failing export holds up no send.

The worker never waits long for a lock: each part runs with a short lock_timeout and, when a
lock is busy (a DROP EXTENSION, a pg_cron export, a manual send), is undone and left to a later
pass.  Waiting instead could deadlock a DROP EXTENSION, which takes the extension's tables in
another order.
"""

from __future__ import annotations

from typing import Callable

from pgsm import export, sender, settings
from pgsm.plpy import Plpy

LOCK_TIMEOUT = "500ms"     # below deadlock_timeout's default (1 s): the worker yields first


_said: set[str] = set()    # parts that found a lock busy, said once per worker


def _yielding(plpy: Plpy, part: str, work: Callable[[], int]) -> int:
    """work() in a subtransaction with a short lock_timeout; 0 (all undone) if a lock is busy,
    which the server log says once per part."""
    plpy.execute(f"SELECT pg_catalog.set_config('lock_timeout', '{LOCK_TIMEOUT}', true)")
    try:
        with plpy.subtransaction():
            return work()
    except plpy.spiexceptions.LockNotAvailable:
        if part not in _said:
            _said.add(part)
            plpy.log(f"pg_stat_monitor worker left its {part} to a later pass: a lock was busy"
                     " (said once)")
        return 0


def tick(plpy: Plpy, schema: str) -> int:
    """Export, unless pg_cron does it; returns the rows written."""
    if settings.get(plpy, "pgsm_export_auto") != "on":
        return 0
    return _yielding(plpy, "export", lambda: export.export(plpy, schema))


def drain(plpy: Plpy) -> int:
    """Drain the fragment table when due; returns the entries queued."""
    return _yielding(plpy, "drain", lambda: sender.tick(plpy))


def send(plpy: Plpy) -> int:
    """Send what is pending to every coordinator that is due; returns the entries delivered."""
    return _yielding(plpy, "send", lambda: sender.send_pending(plpy))
