"""Synthetic fragment entries and batches, as a pgbench run through a coordinator makes them."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from pgsm import transport

STREAM = "0123456789abcdef0123456789abcdef"
# the statements of pgbench's TPC-B-like script, as postgres_fdw sends them to a partition
PGBENCH_FRAGMENTS = (
    "UPDATE public.pgbench_accounts_p{p} SET abalance = (abalance + $1::integer)"
    " WHERE ((aid = $2::integer))",
    "SELECT abalance FROM public.pgbench_accounts_p{p} WHERE ((aid = $1::integer))",
    "UPDATE public.pgbench_tellers_p{p} SET tbalance = (tbalance + $1::integer)"
    " WHERE ((tid = $2::integer))",
    "UPDATE public.pgbench_branches_p{p} SET bbalance = (bbalance + $1::integer)"
    " WHERE ((bid = $2::integer))",
    "INSERT INTO public.pgbench_history_p{p}(tid, bid, aid, delta, mtime)"
    " VALUES ($1, $2, $3, $4, $5)",
)
BUCKET_US = 60_000_000
# a day ago (received fragments are kept for the history retention, counted from now)
START_US = int(time.time() - 86_400) * 1_000_000 // BUCKET_US * BUCKET_US


def pgbench_entries(n: int, coordinator: str = "n1", seed: int = 1,
                    first_id: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """n (text, fields) entries: pgbench's five statements on partitions and buckets, each
    with the tag of its parent."""
    rng = random.Random(seed)
    parents = [rng.randint(-(1 << 63), (1 << 63) - 1) for _ in PGBENCH_FRAGMENTS]
    fragments = [[rng.randint(-(1 << 63), (1 << 63) - 1) for _ in range(4)]
                 for _ in PGBENCH_FRAGMENTS]
    entries = []
    for i in range(n):
        stmt, part, bucket = i % 5, (i // 5) % 4, i // 20
        parent = parents[stmt]
        text = (PGBENCH_FRAGMENTS[stmt].format(p=part)
                + f" /*pgsm_coord='{coordinator}',pgsm_qid='{parent}'*/")
        calls = rng.randint(1, 400)
        # the server measures in nanoseconds and adds milliseconds as doubles, call by call
        times = [rng.randint(10_000, 400_000) / 1e6 for _ in range(calls)]
        total = 0.0
        for t in times:
            total += t
        entries.append((text, {
            "id": first_id + i, "parent_queryid": parent,
            "fragment_queryid": fragments[stmt][part],
            "dbid": 5, "userid": 10, "bucket_start": START_US + bucket * BUCKET_US,
            "calls": calls, "rows": calls if stmt != 4 else calls,
            "total_exec_time": total, "min_exec_time": min(times),
            "max_exec_time": max(times), "shared_blks_hit": calls * rng.randint(3, 5),
            "shared_blks_read": rng.randint(0, 3), "temp_blks_written": 0,
            "wal_bytes": 0 if stmt == 1 else calls * rng.randint(60, 90),
        }))
    return entries


def batch(n: int = 60, sender: str = "n2", coordinator: str = "n1", first_id: int = 1,
          seed: int = 1, stream: str = STREAM) -> transport.Batch:
    """A batch of n pgbench-like entries from sender to coordinator."""
    return transport.make_batch(sender, coordinator, stream,
                                pgbench_entries(n, coordinator, seed, first_id))


def payload(b: transport.Batch, compression: str = "zstd") -> bytes:
    """The payload of a batch."""
    return transport.encode(b, compression)[0]


def malformed(change: Any) -> bytes:
    """An uncompressed payload whose body (a dict) was changed by change; header correct."""
    doc = json.loads(payload(batch(20), "none")[transport.HEADER.size:])
    change(doc)
    body = json.dumps(doc).encode()
    return transport.HEADER.pack(transport.MAGIC, transport.VERSION, 0, 0, len(body)) + body
