"""``pgsm_worker_tick()``: what the background worker does on each wake."""

from __future__ import annotations

from pgsm import export, receiver, sender
from pgsm.plpy import Plpy


def tick(plpy: Plpy, schema: str) -> int:
    """Export finished buckets (the export also keeps the partitions in shape), drop received
    fragments past the history retention, then, every pgsm_sdm_send_interval, send fragment
    statistics to their coordinators.  A failed send pass is undone alone (its subtransaction,
    the drain's release with it) and said as a warning: the export stays."""
    written = export.export(plpy, schema)
    receiver.purge(plpy)
    try:
        with plpy.subtransaction():
            sender.tick(plpy)
    except Exception as error:  # plpy's errors and ours: the export must still commit
        plpy.warning(f"pg_stat_monitor could not send fragment statistics: {error}")
    return written
