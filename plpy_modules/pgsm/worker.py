"""``pgsm_worker_tick()``: what the background worker does on each wake."""

from __future__ import annotations

from pgsm import export
from pgsm.plpy import Plpy


def tick(plpy: Plpy, schema: str) -> int:
    """Export finished buckets; the export also keeps the partitions in shape."""
    return export.export(plpy, schema)
