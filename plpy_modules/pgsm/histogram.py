"""``histogram(bucket, queryid)``: one query's execution-time histogram as rows."""

from __future__ import annotations

from typing import Iterator

from pgsm.catalog import internal
from pgsm.plpy import Plpy, qualified

BAR_WIDTH = 30
BAR_CHAR = "\u25a0"


def bar(freq: int, top: int) -> str:
    """Return a bar of at most BAR_WIDTH marks, scaled to the largest slot."""
    if top <= 0 or freq <= 0:
        return ""
    return BAR_CHAR * max(1, round(freq * BAR_WIDTH / top))


def rows(plpy: Plpy, schema: str, bucket: int | None, queryid: int | None) -> Iterator[tuple[str, int, str]]:
    """Yield (range, freq, bar) for each slot, summing the query's rows in the bucket.

    No row of the view for the query in the bucket: no rows, as upstream.
    """
    ranges = plpy.execute(f"SELECT {internal(plpy, 'pgsm_range')}() AS r")[0]["r"]
    plan = plpy.prepare(
        "SELECT resp_calls FROM " + qualified(plpy, schema, "pg_stat_monitor")
        + " WHERE bucket = $1 AND queryid = $2",
        ["bigint", "bigint"],
    )
    freqs = [0] * len(ranges)
    found = plpy.execute(plan, [bucket, queryid])
    if len(found) == 0:
        return
    for row in found:
        for i, count in enumerate(row["resp_calls"] or []):
            if i < len(freqs):
                freqs[i] += int(count)
    top = max(freqs, default=0)
    for label, freq in zip(ranges, freqs):
        yield label, freq, bar(freq, top)
