"""pg_cron can schedule the export instead of the worker."""

from __future__ import annotations

import pytest

from fixtures import ServerFactory
from history_helpers import HISTORY, LIVE, calls_of, marker, poll, rows
from pgserver import PgServer


@pytest.mark.slow
def test_pg_cron_job_exports_finished_buckets(make_server: ServerFactory) -> None:
    """A '* * * * *' pg_cron job calling pg_stat_monitor_export() fills history."""
    srv: PgServer = make_server(settings={
        "shared_preload_libraries": "'pg_stat_monitor,pg_cron'",
        "cron.database_name": "'postgres'",
        "cron.use_background_workers": "on",
        "max_worker_processes": "16",
        "pg_stat_monitor.pgsm_bucket_time": "1",
        "pg_stat_monitor.pgsm_export_auto": "off",
    })
    with srv.connect() as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        sql = marker(conn, "hist_cron_marker")
        for _ in range(3):
            conn.execute(sql)
        conn.execute("SELECT cron.schedule('pgsm-export', '* * * * *',"
                     " 'SELECT pg_stat_monitor_export()')")

    def state() -> tuple[list[tuple[str]], int]:
        with srv.connect() as conn:
            runs = rows(conn, "SELECT status FROM cron.job_run_details"
                              " WHERE command = 'SELECT pg_stat_monitor_export()'")
            return runs, calls_of(conn, HISTORY, sql)

    runs, exported = poll(state, lambda s: ("succeeded",) in s[0] and s[1] == 3,
                          timeout=90, interval=1)
    with srv.connect() as conn:
        live = calls_of(conn, LIVE, sql)
        exports = rows(conn, "SELECT exports > 0 FROM pg_stat_monitor_info")
    assert ("succeeded",) in runs
    assert ("failed",) not in runs
    assert exported == 3
    assert live == 0
    assert exports == [(True,)]
