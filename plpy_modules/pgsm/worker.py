"""``pgsm_worker_tick()``: what the background worker does on each wake."""

from __future__ import annotations

from pgsm import export, receiver
from pgsm.plpy import Plpy


def tick(plpy: Plpy, schema: str) -> int:
    """Export finished buckets (the export also keeps the partitions in shape) and drop
    received fragments past the history retention."""
    written = export.export(plpy, schema)
    receiver.purge(plpy)
    return written
