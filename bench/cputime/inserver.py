"""Backend CPU per statement with pgsm_track_cpu_time on and off, alternating in one session.

  .venv/bin/python bench/cputime/inserver.py "host=/sock port=5432 dbname=postgres" [blocks] [n]

Against a running server with pg_stat_monitor preloaded and pgbench's tables (pgbench -i).
One connection runs the pgbench select-only statement, prepared, in blocks of n executions;
the blocks alternate between the setting off and on (SET, no restart), and each block's cost is
the backend's time on CPU (/proc/PID/schedstat, exact to the ns) over the block / n.  The client
and the backend are pinned to the last CPU (run as root or as the server's user).  Prints the
median µs per statement for off and on, and the median of the paired (on - off) differences.
Needs psycopg (the test virtualenv).
"""

from __future__ import annotations

import os
import random
import statistics
import sys

import psycopg

SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = %s"


def on_cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def block(conn: psycopg.Connection[tuple[int]], pid: int, n: int) -> float:
    """µs of backend CPU per execution over n executions."""
    before = on_cpu_ns(pid)
    for _ in range(n):
        conn.execute(SQL, (random.randint(1, 100000),), prepare=True).fetchone()
    return (on_cpu_ns(pid) - before) / n / 1000


def main() -> None:
    dsn = sys.argv[1]
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    cpu = max(os.sched_getaffinity(0))
    with psycopg.connect(dsn, autocommit=True) as conn:
        pid = conn.info.backend_pid
        os.sched_setaffinity(0, {cpu})
        os.sched_setaffinity(pid, {cpu})
        block(conn, pid, n)  # warm-up
        got: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(blocks):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for setting in order:
                conn.execute(f"SET pg_stat_monitor.pgsm_track_cpu_time = {setting}")
                got[setting].append(block(conn, pid, n))
    diffs = [b - a for a, b in zip(got["off"], got["on"])]
    for setting, values in got.items():
        print(f"{setting:4s} median {statistics.median(values):6.2f} µs/statement  "
              + " ".join(f"{v:.2f}" for v in values))
    print(f"on - off, paired: median {statistics.median(diffs):+.3f} µs/statement  "
          + " ".join(f"{d:+.2f}" for d in diffs))


if __name__ == "__main__":
    main()
