"""What the background worker does on each wake, in two transactions.

``pgsm_worker_tick()`` exports finished buckets (which also keeps the partitions of history and
of received fragments in shape) unless pg_cron does it, and every pgsm_sdm_send_interval drains
the fragment table into the outbox.  ``pgsm_worker_send()``, in the next transaction, sends the
coordinators what is pending: a fragment leaves within one send interval of its execution, and a
coordinator that is down (connect and statement timeouts) holds up nothing the tick committed.
"""

from __future__ import annotations

from pgsm import export, sender, settings
from pgsm.plpy import Plpy


def tick(plpy: Plpy, schema: str) -> int:
    """Export, then drain when due.  A failed drain is undone alone (its subtransaction, the
    release with it) and said as a warning: the export stays."""
    written = export.export(plpy, schema) if settings.get(plpy, "pgsm_export_auto") == "on" \
        else 0
    try:
        with plpy.subtransaction():
            sender.tick(plpy)
    except Exception as error:  # plpy's errors and ours: the export must still commit
        plpy.warning(f"pg_stat_monitor could not drain fragment statistics: {error}")
    return written


def send(plpy: Plpy) -> int:
    """Send what is pending to every coordinator that is due; returns the entries delivered."""
    return sender.send_pending(plpy)
