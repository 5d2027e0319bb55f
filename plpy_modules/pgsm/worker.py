"""What the background worker does on each wake, in three transactions, each failing alone.

``pgsm_worker_tick()`` exports finished buckets (which also keeps the partitions of history and
of received fragments in shape) unless pg_cron does it.  ``pgsm_worker_drain()`` drains the
fragment table into the outbox every pgsm_sdm_send_interval.  ``pgsm_worker_send()`` then sends
the coordinators what is pending: a fragment leaves within one send interval of its execution,
a coordinator that is down (connect and statement timeouts) holds up nothing committed before,
and a failing export holds up no send.
"""

from __future__ import annotations

from pgsm import export, sender, settings
from pgsm.plpy import Plpy


def tick(plpy: Plpy, schema: str) -> int:
    """Export, unless pg_cron does it; returns the rows written."""
    if settings.get(plpy, "pgsm_export_auto") != "on":
        return 0
    return export.export(plpy, schema)


def drain(plpy: Plpy) -> int:
    """Drain the fragment table when due; returns the entries queued."""
    return sender.tick(plpy)


def send(plpy: Plpy) -> int:
    """Send what is pending to every coordinator that is due; returns the entries delivered."""
    return sender.send_pending(plpy)
