"""Helpers of the hardening tests (test_hardening_*.py): the worker, pgbench, log lines, roles."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from pgserver import PgServer, pg_bindir

WORKER = "pg_stat_monitor worker"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def worker_pid(server: PgServer) -> int | None:
    """The pid of the worker as pg_stat_activity shows it, or None if there is none."""
    got = server.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = %s", [WORKER])
    return int(got[0][0]) if len(got) == 1 else None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces: count the fields after its ')'
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def run_pgbench(server: PgServer, script: Path, *args: str,
                dbname: str = "postgres") -> subprocess.Popen[str]:
    """Start pgbench -n with a script file against a server; the caller waits for it."""
    return subprocess.Popen(
        [os.path.join(pg_bindir(), "pgbench"), "-n", "-f", str(script), "-h", str(server.sockdir), "-p", str(server.port),
         "-U", "postgres", *args, dbname],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pgbench_transactions(proc: subprocess.Popen[str], timeout: float) -> int:
    """Wait for pgbench; the number of transactions it processed (it must have succeeded)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert failed is None or failed.group(1) == "0", out
    found = re.search(r"number of transactions actually processed: (\d+)", out)
    assert found is not None, out
    return int(found.group(1))


def log_lines(server: PgServer, *needles: str) -> list[str]:
    """The lines of the server log that contain every one of the needles."""
    return [line for line in server.log().splitlines() if all(n in line for n in needles)]


def create_roles(server: PgServer, *roles: str) -> None:
    """(Re)create plain login roles, dropping what earlier runs left them."""
    for role in roles:
        for (dbname,) in server.sql("SELECT datname FROM pg_database WHERE datallowconn"):
            if server.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
                server.sql(f"DROP OWNED BY {role} CASCADE", dbname=dbname)
        server.sql(f"DROP ROLE IF EXISTS {role}")
        server.sql(f"CREATE ROLE {role} LOGIN")


def role_oid(conn: psycopg.Connection[Any], role: str) -> int:
    """The OID of a role."""
    row = conn.execute("SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s",
                       [role]).fetchone()
    assert row is not None, role
    return int(row[0])
