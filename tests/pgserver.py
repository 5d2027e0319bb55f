"""A real PostgreSQL 15 server for tests, started with pytest-postgresql's executor."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

import psycopg
from port_for import get_port
from pytest_postgresql.executor import PostgreSQLExecutor



def pg_bindir() -> str:
    """The bindir of the pg_config on PATH, looked up when needed (unit tests need none)."""
    return subprocess.check_output(["pg_config", "--bindir"], text=True).strip()


def pg_ctl() -> str:
    """pg_ctl of the pg_config on PATH."""
    return os.path.join(pg_bindir(), "pg_ctl")


DEFAULT_SETTINGS = {
    "shared_preload_libraries": "pg_stat_monitor",
    "listen_addresses": "'127.0.0.1,::1'",
    "max_worker_processes": "16",
    "fsync": "off",
}


class PgServer:
    """One server: a data directory, its settings, and helpers to run SQL."""

    def __init__(self, base: Path, settings: dict[str, str] | None = None,
                 bindir: str | None = None) -> None:
        self.base = base
        # another server installation (its own lib/ and share/), or the one of pg_config
        self.pg_ctl = os.path.join(bindir, "pg_ctl") if bindir else pg_ctl()
        port = get_port(None)
        assert port is not None
        self.port: int = port
        self.settings = dict(DEFAULT_SETTINGS)
        self.settings.update(settings or {})
        self.datadir = base / "data"
        self.sockdir = base / "sock"
        self.sockdir.mkdir(parents=True, exist_ok=True)
        self.logfile = base / "server.log"
        self.executor = PostgreSQLExecutor(
            executable=self.pg_ctl,
            host="127.0.0.1",
            port=self.port,
            datadir=str(self.datadir),
            unixsocketdir=str(self.sockdir),
            logfile=str(self.logfile),
            startparams="-w",
            dbname="postgres",
            timeout=120,
        )
        self.executor.init_directory()
        self.write_settings()

    def write_settings(self) -> None:
        """Write the settings into postgresql.auto.conf (replacing earlier ones)."""
        lines = [f"{k} = {v}\n" for k, v in self.settings.items()]
        (self.datadir / "postgresql.auto.conf").write_text("".join(lines))

    def set(self, **settings: str) -> None:
        """Change settings; they take effect at the next start."""
        self.settings.update(settings)
        self.write_settings()

    def start(self) -> "PgServer":
        """Start the server and wait until it accepts connections."""
        self.executor.start()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until a connection succeeds."""
        deadline = time.time() + timeout
        while True:
            try:
                with self.connect():
                    return
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, mode: str = "fast") -> None:
        """Stop with pg_ctl -m mode."""
        subprocess.run(
            [self.pg_ctl, "stop", "-D", str(self.datadir), "-m", mode, "-w"],
            check=True, capture_output=True,
        )
        # forget the finished `pg_ctl start`, or the next start() would wait on it
        self.executor.process = None

    def restart(self) -> None:
        """Stop fast and start again."""
        self.stop()
        self.start()

    def postmaster_pid(self) -> int:
        """The postmaster's pid, from postmaster.pid."""
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def kill_postmaster_child(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send a signal to one server process."""
        os.kill(pid, sig)

    def dsn(self, dbname: str = "postgres", user: str = "postgres", host: str | None = None) -> str:
        """A libpq connection string; a Unix socket unless host is given."""
        return f"host={host or self.sockdir} port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname: str = "postgres", user: str = "postgres",
                host: str | None = None, **kw: Any) -> psycopg.Connection[Any]:
        """An autocommit connection."""
        return psycopg.connect(self.dsn(dbname, user, host), autocommit=True, **kw)

    def sql(self, query: str, params: Sequence[Any] | None = None, dbname: str = "postgres",
            user: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement on a fresh connection and return its rows."""
        with self.connect(dbname, user) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def log(self) -> str:
        """The server log so far."""
        return self.logfile.read_text(errors="replace")

    def cleanup(self) -> None:
        """Stop if running and remove the data directory."""
        try:
            if (self.datadir / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            self.executor.clean_directory()
