"""The worker follows pgsm_export_auto across a reload, and copes with a missing extension."""

from __future__ import annotations

import time

from fixtures import ServerFactory
from history_helpers import HISTORY, calls_of, marker, one, poll

MISSING = "pg_stat_monitor worker found no pg_stat_monitor extension"


def test_export_auto_off_then_on_by_reload(make_server: ServerFactory) -> None:
    """pgsm_export_auto off (after SIGHUP) stops the worker's exports; on again, they resume."""
    srv = make_server(settings={"pg_stat_monitor.pgsm_bucket_time": "1",
                                "pg_stat_monitor.pgsm_export_interval": "1"})
    with srv.connect() as conn:
        conn.execute("ALTER SYSTEM SET pg_stat_monitor.pgsm_export_auto = off")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(1.5)  # the worker reloads at its next wake
        sql = marker(conn, "hist_auto_reload")
        conn.execute(sql)
        conn.execute(sql)
        time.sleep(3.5)  # several buckets end and several passes run
        while_off = calls_of(conn, HISTORY, sql)
        conn.execute("ALTER SYSTEM RESET pg_stat_monitor.pgsm_export_auto")
        conn.execute("SELECT pg_reload_conf()")

    def exported() -> int:
        with srv.connect() as c:
            return calls_of(c, HISTORY, sql)

    assert while_off == 0
    assert poll(exported, lambda n: n == 2) == 2


def test_missing_extension_is_logged_once_and_old_buckets_are_counted(
        make_server: ServerFactory) -> None:
    """No extension in the worker's database: one log line, and discarded calls are counted."""
    srv = make_server(settings={"pg_stat_monitor.pgsm_bucket_time": "1",
                                "pg_stat_monitor.pgsm_export_interval": "1"}, extension=False)
    srv.sql("CREATE DATABASE elsewhere")
    srv.sql("CREATE EXTENSION pg_stat_monitor CASCADE", dbname="elsewhere")
    with srv.connect(dbname="elsewhere") as conn:
        for _ in range(5):
            conn.execute("SELECT 1")
        time.sleep(4.5)  # the buckets leave the 2-second window; passes run every second

        def discarded() -> int:
            return int(one(conn, "SELECT discarded_calls FROM pg_stat_monitor_info"))

        lost = poll(discarded, lambda n: n >= 5)
        exported = one(conn, "SELECT count(*) FROM pg_stat_monitor_history")
    assert lost >= 5
    assert exported == 0
    assert srv.log().count(MISSING) == 1
