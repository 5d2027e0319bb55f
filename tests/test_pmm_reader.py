"""PMM's pg_stat_monitor agent, reproduced, reads every call exactly once (issue 9, must-show 2).

The reader does what the issue says PMM's agent does with the view:
- it scans every row into its columns, client_ip into a non-nullable string: one NULL makes the
  whole read fail, and that read reports nothing;
- it keeps rows of finished buckets (bucket_done) that have a pgsm_query_id;
- it keeps one row per (bucket_start_time, pgsm_query_id), in a map filled in view order, so
  the LAST row read wins;
- it reports, per kept row, the calls added since the previous read of that bucket (a bucket
  not read before: all its calls; fewer calls than before: treated as a new row, all its calls);
- its cache of previous reads keeps every bucket it has read (a read replaces the buckets it
  saw), so a bucket missing from one read is not reported again when it comes back.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from fixtures import ServerFactory
from hardening_helpers import create_roles
from history_helpers import one, sleep_to_bucket_start
from pgserver import PgServer

BUCKETS = 6                 # buckets with a workload
STATEMENTS = 450            # distinct statements per bucket, each from both clients
DIVISIONS = 10              # statements that succeed and fail, from each client
TAG = "pmmload"
READER = "pmm_agent"
WARN = f"DO $$ BEGIN RAISE WARNING 'careful'; END $$ /* {TAG} */"

# the columns of PMM's pg_stat_monitor 2.x query
COLUMNS = (
    "bucket, bucket_start_time, userid, username, dbid, datname, client_ip, pgsm_query_id,"
    " queryid, toplevel, top_queryid, query, comments, planid, query_plan, top_query,"
    " application_name, relations, cmd_type, cmd_type_text, elevel, sqlcode, message, calls,"
    " total_exec_time, min_exec_time, max_exec_time, mean_exec_time, stddev_exec_time, rows,"
    " shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written,"
    " local_blks_hit, local_blks_read, local_blks_dirtied, local_blks_written, temp_blks_read,"
    " temp_blks_written, blk_read_time, blk_write_time, resp_calls, cpu_user_time,"
    " cpu_sys_time, wal_records, wal_fpi, wal_bytes, bucket_done, plans, total_plan_time,"
    " min_plan_time, max_plan_time, mean_plan_time, stddev_plan_time")

Row = dict[str, Any]
Key = tuple[str, bool]      # (query text, is a row of an ERROR or WARNING)


class NullScan(Exception):
    """A NULL read into a non-nullable field: PMM's whole read fails."""


@dataclass
class Agent:
    """The reader: its cache of previous reads and what it has reported."""

    cache: dict[Any, dict[int, Row]] = field(default_factory=dict)
    reported: Counter[Key] = field(default_factory=Counter)
    failed_reads: list[str] = field(default_factory=list)
    reads: int = 0

    def read(self, conn: psycopg.Connection[Any]) -> set[Any]:
        """One read of the view; the finished buckets it saw."""
        self.reads += 1
        cur = conn.cursor(row_factory=dict_row)
        current: dict[Any, dict[int, Row]] = {}
        try:
            for row in cur.execute(f"SELECT {COLUMNS} FROM pg_stat_monitor"):
                if row["client_ip"] is None:
                    raise NullScan("converting NULL to string is unsupported")
                if not row["bucket_done"] or row["pgsm_query_id"] is None:
                    continue
                current.setdefault(row["bucket_start_time"], {})[row["pgsm_query_id"]] = row
        except NullScan as e:
            self.failed_reads.append(str(e))
            return set()
        for bucket, kept in current.items():
            self.report(kept, self.cache.get(bucket, {}))
        self.cache.update(current)
        return set(current)

    def report(self, kept: dict[int, Row], prev: dict[int, Row]) -> None:
        """Report the calls added since the previous read of one bucket."""
        for query_id, row in kept.items():
            before = prev.get(query_id)
            count = row["calls"] - (before["calls"] if before else 0)
            if count < 0:
                count = row["calls"]
            if count and row["query"].endswith(f"/* {TAG} */"):
                self.reported[(row["query"], row["elevel"] > 0)] += count


@pytest.fixture(scope="module")
def srv(make_server: ServerFactory) -> PgServer:
    """1-second buckets in a window of 10, exported by the worker each second, 1.5 MB of entries
    (about four buckets of this workload: older buckets leave memory while in the window, so
    reads mix live and history rows); PMM's role is in pg_monitor."""
    server = make_server(settings={
        "pg_stat_monitor.pgsm_bucket_time": "1",
        "pg_stat_monitor.pgsm_max_buckets": "10",
        "pg_stat_monitor.pgsm_export_interval": "1",
        "pg_stat_monitor.pgsm_max": "'1536kB'",
    })
    create_roles(server, READER)
    server.sql(f"GRANT pg_monitor TO {READER}")
    return server


def statements() -> list[str]:
    """The bucket's distinct statements: k output columns, k = 1..STATEMENTS."""
    return [f"SELECT {', '.join(['1'] * k)} /* {TAG} */" for k in range(1, STATEMENTS + 1)]


def division(k: int, by: int) -> str:
    """A statement of k divisions of 10 by 'by': select 10/2 succeeds, select 10/0 fails."""
    return f"SELECT {', '.join([f'10/{by}'] * k)} /* {TAG} */"


def run_workload(client: psycopg.Connection[Any], sent: Counter[Key]) -> None:
    """One client's part of a bucket: every statement, the divisions, a warning."""
    with client.pipeline():
        for sql in statements():
            client.execute(sql)
    for k in range(1, DIVISIONS + 1):
        client.execute(division(k, 2))
        with pytest.raises(psycopg.errors.DivisionByZero):
            client.execute(division(k, 0))
        sent[(division(k, 2), False)] += 1
        sent[(division(k, 0), True)] += 1
    client.execute(WARN)
    sent[(WARN, False)] += 1
    sent[(WARN, True)] += 1
    for sql in statements():
        sent[(sql, False)] += 1


def memory_buckets(conn: psycopg.Connection[Any]) -> set[Any]:
    """The buckets shared memory holds now."""
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT bucket_start_time FROM pg_stat_monitor_internal(false)").fetchall()}


@pytest.mark.slow
def test_pmm_agent_reports_every_call_exactly_once(srv: PgServer) -> None:
    """Six 1-second buckets of 450 statements from a Unix-socket and a TCP client, with errors
    and warnings, read PMM's way after each bucket and while the buckets go to history and
    leave the window: the calls reported per statement equal the calls sent, none lost, none
    reported twice."""
    agent = Agent()
    sent: Counter[Key] = Counter()
    from_history: set[Any] = set()
    first = None
    with srv.connect() as unix, srv.connect(host="127.0.0.1") as tcp, \
            srv.connect(user=READER, host="127.0.0.1") as reader, srv.connect() as su:
        for _ in range(BUCKETS):
            sleep_to_bucket_start()
            if first is None:
                first = one(su, "SELECT current_bucket_start FROM pg_stat_monitor_info")
            run_workload(unix, sent)
            run_workload(tcp, sent)
            seen = agent.read(reader)
            from_history |= {b for b in seen - memory_buckets(su) if b >= first}
        # read on until every bucket of the workload has left the 10-second window
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            seen = agent.read(reader)
            from_history |= {b for b in seen - memory_buckets(su) if b >= first}
            time.sleep(0.5)
        [(overflowed, dropped)] = su.execute(
            "SELECT overflowed_calls, dropped_calls FROM pg_stat_monitor_info").fetchall()
    assert agent.failed_reads == []
    # every call found room (an '<overflow>' row has no pgsm_query_id: PMM would skip it)
    assert (overflowed, dropped) == (0, 0)
    # some reads took finished buckets of the workload from history, others from memory
    assert from_history
    assert sum(sent.values()) == BUCKETS * 2 * (STATEMENTS + 2 * DIVISIONS + 2)
    lost = {k: v - agent.reported[k] for k, v in sent.items() if agent.reported[k] < v}
    twice = {k: agent.reported[k] - v for k, v in sent.items() if agent.reported[k] > v}
    assert (lost, twice) == ({}, {})
    assert agent.reported == sent
