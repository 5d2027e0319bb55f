"""Delivery: a coordinator that is down loses nothing and gets everything once when back; a lost
acknowledgement does not count twice; names resolve only through the shard's configuration."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import psycopg
import pytest

from cluster import Cluster, cluster_fixture  # noqa: F401
from pgserver import PgServer
from sdm_helpers import (
    Fragments,
    assert_same,
    entries,
    for_coordinator,
    outbox,
    quiet,
    received,
    recorded,
    recorded_everywhere,
    send,
)


@pytest.fixture(scope="module")
def quiet_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with nothing pending anywhere and workers that leave sending to the tests."""
    quiet(cluster)
    yield cluster


def set_and_reload(server: PgServer, *pairs: str | None) -> None:
    """ALTER SYSTEM SET (or RESET, for None) pg_stat_monitor settings, then reload."""
    for name, value in zip(pairs[::2], pairs[1::2]):
        server.sql(f"ALTER SYSTEM RESET pg_stat_monitor.{name}" if value is None
                   else f"ALTER SYSTEM SET pg_stat_monitor.{name} = {value}")
    server.sql("SELECT pg_reload_conf()")


def scan_from(cluster: Cluster, coordinator: str, times: int = 3) -> None:
    """A whole-table scan with an aggregate, run times from a coordinator."""
    with cluster[coordinator].connect() as conn:
        for i in range(times):
            conn.execute(f"SELECT count(*) FROM sharded WHERE v > {i}")


def test_a_coordinator_down_for_several_passes_gets_everything_once(
        quiet_cluster: Cluster) -> None:
    """n1 stops with fragments pending on n2 and n3; three passes keep them (errors shown) while
    n3 still delivers to n2; n1 restarts and gets each entry once; later passes add nothing."""
    cluster = quiet_cluster
    scan_from(cluster, "n1")
    scan_from(cluster, "n3")
    want = recorded_everywhere(cluster)
    held = {shard: entries(cluster[shard], "n1") for shard in ("n2", "n3")}
    cluster["n1"].stop()
    try:
        for _ in range(3):
            started = time.monotonic()
            send(cluster["n2"])
            send(cluster["n3"])
            assert time.monotonic() - started < 10
        for shard in ("n2", "n3"):
            box = outbox(cluster[shard])["n1"]
            assert box["pending"] == held[shard] > 0
            assert box["dropped"] == 0 and box["last_error"]
        from_n2 = {k: v for k, v in want.items() if k[:2] == ("n3", "n2")}
        assert from_n2 and {k: v for k, v in received("n3", cluster["n3"]).items()
                            if k[1] == "n2"}.keys() == from_n2.keys()
    finally:
        cluster["n1"].start()
    assert sum(send(cluster[s]) for s in ("n2", "n3")) > 0
    assert_same(received("n1", cluster["n1"]), for_coordinator(want, "n1"))
    assert_same({k: v for k, v in received("n3", cluster["n3"]).items() if k[1] == "n2"},
                from_n2)
    for shard in ("n2", "n3"):
        assert outbox(cluster[shard])["n1"]["pending"] == 0
        assert outbox(cluster[shard])["n1"]["last_error"] is None
    for shard in ("n2", "n3"):
        send(cluster[shard])
    assert_same(received("n1", cluster["n1"]), for_coordinator(want, "n1"))


def test_a_shard_restarted_with_an_unsent_outbox_delivers_it_after(
        quiet_cluster: Cluster) -> None:
    """n2's entries for n1 wait in its outbox (n1 down); n2 restarts, then n1: all arrive once."""
    cluster = quiet_cluster
    before, want = scanned_from_n1(cluster)
    held = entries(cluster["n2"], "n1")
    cluster["n1"].stop()
    try:
        send(cluster["n2"])
        assert outbox(cluster["n2"])["n1"]["pending"] == held > 0
        cluster["n2"].restart()
    finally:
        cluster["n1"].start()
    assert send(cluster["n2"]) == held
    assert_n1_has_from_n2(cluster, before, want)


def test_a_shard_restarted_cleanly_delivers_its_undrained_fragments(
        quiet_cluster: Cluster) -> None:
    """Fragments n2 recorded but had not drained when it stopped cleanly reach n1 after."""
    cluster = quiet_cluster
    before, want = scanned_from_n1(cluster)
    cluster["n2"].restart()
    send(cluster["n2"])
    assert_n1_has_from_n2(cluster, before, want)


def added(base: Fragments, more: Fragments) -> Fragments:
    """base plus more, key by key."""
    total = dict(base)
    for key, (calls, rows, time_) in more.items():
        old = total.get(key, (0, 0, 0.0))
        total[key] = (old[0] + calls, old[1] + rows, old[2] + time_)
    return total


def scanned_from_n1(cluster: Cluster) -> tuple[Fragments, Fragments]:
    """Scans from n1; returns what n1 had received from the shards before and what n2 recorded
    for it."""
    before = received("n1", cluster["n1"])
    scan_from(cluster, "n1", times=2)
    return before, for_coordinator(recorded("n2", cluster["n2"]), "n1")


def held_in_n2_outbox(cluster: Cluster) -> tuple[Fragments, Fragments]:
    """Scans from n1 whose fragments n2 drains into its outbox while n1 is down (nothing
    delivered); returns what n1 had received before and what n2 recorded for it."""
    before, want = scanned_from_n1(cluster)
    cluster["n1"].stop()
    try:
        send(cluster["n2"])
    finally:
        cluster["n1"].start()
    return before, want


def assert_n1_has_from_n2(cluster: Cluster, before: Fragments, want: Fragments) -> None:
    """n1's fragments from n2 are what it had before plus want, each exactly once."""
    got = {k: v for k, v in received("n1", cluster["n1"]).items() if k[1] == "n2"}
    assert_same(got, added({k: v for k, v in before.items() if k[1] == "n2"}, want))


def test_a_batch_whose_acknowledgement_is_lost_is_applied_once(quiet_cluster: Cluster) -> None:
    """Entries committed to n2's outbox, sent in a transaction that then rolls back (n1 applied
    them, n2 still has them): sent again, n1 applies none twice."""
    cluster = quiet_cluster
    before, want = held_in_n2_outbox(cluster)
    pending = outbox(cluster["n2"])["n1"]["pending"]
    assert pending > 0
    with cluster["n2"].connect() as conn:
        with conn.transaction(force_rollback=True):
            assert conn.execute("SELECT pg_stat_monitor_sdm_send()").fetchone() == (pending,)
    assert outbox(cluster["n2"])["n1"]["pending"] == pending
    applied = cluster["n1"].sql("SELECT entries_received FROM pg_stat_monitor_sdm_stats_updated()"
                                " WHERE node = 'n2'")[0][0]
    assert send(cluster["n2"]) == pending
    assert cluster["n1"].sql("SELECT entries_received FROM pg_stat_monitor_sdm_stats_updated()"
                             " WHERE node = 'n2'")[0][0] == applied
    assert_n1_has_from_n2(cluster, before, want)


def n1_applied_from_n2(cluster: Cluster) -> int:
    """Entries n1 applied from n2 so far."""
    return int(cluster["n1"].sql("SELECT entries_received FROM pg_stat_monitor_sdm_stats_updated()"
                                 " WHERE node = 'n2'")[0][0])


@pytest.mark.parametrize("restart", [False, True], ids=["", "and_a_restart"])
def test_a_drain_rolled_back_after_its_send_is_applied_once(quiet_cluster: Cluster,
                                                            restart: bool) -> None:
    """pg_stat_monitor_sdm_send() drains and delivers, then its transaction fails: the entries go
    back to n2's fragment table (and, with a clean restart of n2, into its dump and back); the
    next send drains them again under the same ids and n1, which applied them, skips them."""
    cluster = quiet_cluster
    before, want = scanned_from_n1(cluster)
    held = entries(cluster["n2"], "n1")
    applied = n1_applied_from_n2(cluster)
    with pytest.raises(psycopg.errors.RaiseException, match="after the send"):
        cluster["n2"].sql("DO $$ BEGIN PERFORM pg_stat_monitor_sdm_send();"
                          " RAISE EXCEPTION 'after the send'; END $$")
    assert n1_applied_from_n2(cluster) == applied + held > applied
    if restart:
        cluster["n2"].restart()
    assert entries(cluster["n2"], "n1") == held
    assert send(cluster["n2"]) == held
    assert n1_applied_from_n2(cluster) == applied + held
    assert_n1_has_from_n2(cluster, before, want)


def test_only_the_worker_database_drains(quiet_cluster: Cluster) -> None:
    """pg_stat_monitor_sdm_send() in a database other than pgsm_worker_database says so and
    drains nothing: the fragments stay for the worker's database, whose send delivers them."""
    cluster = quiet_cluster
    n2 = cluster["n2"]
    n2.sql("CREATE DATABASE sdm_other")
    try:
        n2.sql("CREATE EXTENSION pg_stat_monitor CASCADE", dbname="sdm_other")
        scan_from(cluster, "n1", times=1)
        held = entries(n2, "n1")
        notices: list[str] = []
        with n2.connect(dbname="sdm_other") as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            assert conn.execute("SELECT pg_stat_monitor_sdm_send()").fetchone() == (0,)
        assert notices == ["pg_stat_monitor drains fragment statistics only in the worker's"
                           " database"]
        assert entries(n2, "n1") == held > 0
        assert send(n2) == held
    finally:
        n2.sql("DROP DATABASE sdm_other")


def wait_accepting(server: PgServer, timeout: float = 90) -> None:
    """Wait until the server, restarting after a crash, takes connections again."""
    deadline = time.monotonic() + timeout
    time.sleep(1)
    while True:
        try:
            server.sql("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_sender_killed_after_the_coordinators_commit_resends_once(
        quiet_cluster: Cluster) -> None:
    """n2's send is SIGKILLed after n1 committed the batch, before n2's own commit: n2 restarts
    with the entries still in its outbox, sends them again, and n1 applies none twice."""
    cluster = quiet_cluster
    before, want = held_in_n2_outbox(cluster)
    pending = outbox(cluster["n2"])["n1"]["pending"]
    applied = n1_applied_from_n2(cluster)
    sender = psycopg.connect(cluster["n2"].dsn(), autocommit=True)
    pid = sender.execute("SELECT pg_backend_pid()").fetchone()[0]    # type: ignore[index]
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(sender.execute, "SELECT pg_stat_monitor_sdm_send(), pg_sleep(120)")
        deadline = time.monotonic() + 60
        while n1_applied_from_n2(cluster) < applied + pending:
            assert time.monotonic() < deadline and not call.done()
            time.sleep(0.1)
        cluster["n2"].kill_postmaster_child(pid)
        with pytest.raises(psycopg.OperationalError):
            call.result(timeout=60)
    sender.close()
    wait_accepting(cluster["n2"])
    assert outbox(cluster["n2"])["n1"]["pending"] == pending
    assert send(cluster["n2"]) == pending
    assert n1_applied_from_n2(cluster) == applied + pending
    assert outbox(cluster["n2"])["n1"]["pending"] == 0
    assert_n1_has_from_n2(cluster, before, want)


def listener() -> socket.socket:
    """A TCP socket listening on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    sock.setblocking(False)
    return sock


def connection_attempted(sock: socket.socket) -> bool:
    """Whether anyone connected to the listener."""
    try:
        sock.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def test_unknown_names_open_no_connection_and_are_counted(quiet_cluster: Cluster) -> None:
    """Tags naming 'nx' (no registry entry, no server) and 'ny' (a server of another wrapper,
    pointing at a listener): no connection, each entry dropped and counted, the reason shown."""
    n2 = quiet_cluster["n2"]
    sock = listener()
    port = sock.getsockname()[1]
    n2.sql("CREATE FOREIGN DATA WRAPPER sdm_dummy; CREATE SERVER ny FOREIGN DATA WRAPPER"
           f" sdm_dummy OPTIONS (host '127.0.0.1', port '{port}')")
    try:
        for name in ("nx", "ny"):
            for _ in range(2):
                n2.sql(f"SELECT 1 /*pgsm_coord='{name}',pgsm_qid='5'*/")
        assert send(n2) == 0
        assert not connection_attempted(sock)
        box = outbox(n2)
        assert (box["nx"]["pending"], box["nx"]["dropped"]) == (0, 1)
        assert (box["ny"]["pending"], box["ny"]["dropped"]) == (0, 1)
        assert box["nx"]["last_error"].startswith('unknown node "nx"')
        assert box["ny"]["last_error"] == 'foreign server "ny" does not use postgres_fdw'
        assert send(n2) == 0 and outbox(n2)["nx"]["dropped"] == 1
    finally:
        n2.sql("DROP SERVER ny; DROP FOREIGN DATA WRAPPER sdm_dummy")
        sock.close()


def test_forged_names_cannot_grow_the_outbox_view_without_bound(quiet_cluster: Cluster) -> None:
    """Tags naming 80 nodes nobody configured: every entry dropped and counted, 64 names with a
    row of their own, the other 16 counted under '<other>'."""
    n2 = quiet_cluster["n2"]
    with n2.connect() as conn:
        for i in range(80):
            conn.execute(f"SELECT 1 /*pgsm_coord='forged{i}',pgsm_qid='5'*/")
    send(n2)
    box = {k: v for k, v in outbox(n2).items() if k.startswith("forged") or k == "<other>"}
    assert sum(v["dropped"] for v in box.values()) == 80
    assert len(box) <= 65 and box["<other>"]["dropped"] >= 16
    assert box["<other>"]["last_error"].startswith('unknown node "forged')
    n2.sql("DELETE FROM pgsm_internal.pgsm_sdm_coordinators"
           " WHERE node LIKE 'forged%' OR node = '<other>'")


def test_a_server_a_plain_role_made_is_never_used(quiet_cluster: Cluster) -> None:
    """A plain role with USAGE on postgres_fdw makes server 'nz' (pointing at a listener) and a
    PUBLIC user mapping, then tags a statement with it: no connection, dropped and counted."""
    n2 = quiet_cluster["n2"]
    sock = listener()
    port = sock.getsockname()[1]
    n2.sql("CREATE ROLE sdm_plain LOGIN; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw"
           " TO sdm_plain")
    try:
        with n2.connect(user="sdm_plain") as plain:
            plain.execute(f"CREATE SERVER nz FOREIGN DATA WRAPPER postgres_fdw"
                          f" OPTIONS (host '127.0.0.1', port '{port}', dbname 'postgres')")
            plain.execute("CREATE USER MAPPING FOR PUBLIC SERVER nz OPTIONS (user 'postgres')")
            plain.execute("SELECT 1 /*pgsm_coord='nz',pgsm_qid='5'*/")
        assert send(n2) == 0
        assert not connection_attempted(sock)
        box = outbox(n2)["nz"]
        assert (box["pending"], box["dropped"]) == (0, 1)
        assert box["last_error"] == 'foreign server "nz" is not owned by a superuser'
    finally:
        n2.sql("DROP SERVER IF EXISTS nz CASCADE; REVOKE USAGE ON FOREIGN DATA WRAPPER"
               " postgres_fdw FROM sdm_plain; DROP ROLE sdm_plain")
        sock.close()


def test_the_registry_comes_before_the_foreign_server(quiet_cluster: Cluster) -> None:
    """A registry entry for n1 pointing at a listener: n2 tries it (not the server n1) and keeps
    the entries; removed, the server is used and they arrive."""
    cluster = quiet_cluster
    n2 = cluster["n2"]
    sock = listener()
    port = sock.getsockname()[1]
    scan_from(cluster, "n1", times=1)
    want = for_coordinator(recorded("n2", n2), "n1")
    held = entries(n2, "n1")
    before = received("n1", cluster["n1"])
    n2.sql("SELECT pg_stat_monitor_sdm_add_node('n1', %s)",
           (f"host=127.0.0.1 port={port} dbname=postgres",))
    try:
        assert n2.sql("SELECT * FROM pg_stat_monitor_sdm_nodes") == [
            ("n1", f"host=127.0.0.1 port={port} dbname=postgres")]
        sock.close()                         # refused from now on: fails at once
        assert send(n2) == 0
        assert outbox(n2)["n1"]["pending"] == held > 0
        assert "127.0.0.1" in outbox(n2)["n1"]["last_error"]
    finally:
        assert n2.sql("SELECT pg_stat_monitor_sdm_remove_node('n1')") == [(True,)]
    assert send(n2) == held
    got = {k: v for k, v in received("n1", cluster["n1"]).items() if k[1] == "n2"}
    assert sum(v[0] for v in got.values()) == sum(
        v[0] for k, v in before.items() if k[1] == "n2") + sum(v[0] for v in want.values())


def test_the_registry_is_for_superusers_and_checks_its_input(quiet_cluster: Cluster) -> None:
    """A plain role may not add, remove or read (42501); a bad name or conninfo is 22023."""
    n2 = quiet_cluster["n2"]
    n2.sql("DROP ROLE IF EXISTS sdm_plain; CREATE ROLE sdm_plain LOGIN")
    with n2.connect(user="sdm_plain") as plain:
        for sql in ("SELECT pg_stat_monitor_sdm_add_node('x', 'host=h')",
                    "SELECT pg_stat_monitor_sdm_remove_node('x')",
                    "SELECT * FROM pg_stat_monitor_sdm_nodes",
                    "SELECT pg_stat_monitor_sdm_send()"):
            with pytest.raises(psycopg.Error) as info:
                plain.execute(sql)
            assert info.value.sqlstate == "42501", sql
    with n2.connect() as conn:
        for name, info_ in (("bad name", "host=h"), ("n9", "host")):
            with pytest.raises(psycopg.Error) as err:
                conn.execute("SELECT pg_stat_monitor_sdm_add_node(%s, %s)", (name, info_))
            assert err.value.sqlstate == "22023"
    assert n2.sql("SELECT count(*) FROM pg_stat_monitor_sdm_nodes") == [(0,)]


def test_a_full_outbox_drops_and_counts(quiet_cluster: Cluster) -> None:
    """pgsm_sdm_outbox_max = 1 while n1 is down: one entry kept, the others counted dropped."""
    cluster = quiet_cluster
    n2 = cluster["n2"]
    scan_from(cluster, "n1", times=3)
    held = entries(n2, "n1")
    dropped = outbox(n2)["n1"]["dropped"]
    set_and_reload(n2, "pgsm_sdm_outbox_max", "1")
    cluster["n1"].stop()
    try:
        time.sleep(0.3)
        send(n2)
        assert outbox(n2)["n1"]["pending"] == 1
        assert outbox(n2)["n1"]["dropped"] - dropped == held - 1 >= 0
    finally:
        set_and_reload(n2, "pgsm_sdm_outbox_max", None)
        cluster["n1"].start()
    send(n2)
    assert outbox(n2)["n1"]["pending"] == 0


def test_the_worker_sends_every_interval(quiet_cluster: Cluster) -> None:
    """With a 1 s send interval (and 1 s worker wakes) n1 receives n2's fragments unasked."""
    cluster = quiet_cluster
    n2 = cluster["n2"]
    set_and_reload(n2, "pgsm_sdm_send_interval", "'1s'", "pgsm_export_interval", "1")
    try:
        before = cluster["n1"].sql("SELECT coalesce(sum(entries_received), 0)::int"
                                   " FROM pg_stat_monitor_sdm_stats_updated() WHERE node = 'n2'")
        scan_from(cluster, "n1", times=2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = cluster["n1"].sql("SELECT coalesce(sum(entries_received), 0)::int"
                                    " FROM pg_stat_monitor_sdm_stats_updated()"
                                    " WHERE node = 'n2'")
            if now[0][0] > before[0][0]:
                break
            time.sleep(0.3)
        assert now[0][0] > before[0][0]
    finally:
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1h'", "pgsm_export_interval", None)


def test_a_hanging_coordinator_holds_up_no_export(quiet_cluster: Cluster) -> None:
    """A registered node 'nb' whose address takes connections and never answers: while n2's
    worker waits on it, the export of the same pass is already committed (the send runs in a
    transaction that started after it)."""
    n2 = quiet_cluster["n2"]
    sock = listener()
    n2.sql("SELECT pg_stat_monitor_sdm_add_node('nb', %s)",
           (f"host=127.0.0.1 port={sock.getsockname()[1]} dbname=postgres",))
    try:
        n2.sql("SELECT 1 /*pgsm_coord='nb',pgsm_qid='5'*/")
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1s'", "pgsm_export_interval", "1")
        deadline = time.monotonic() + 30
        while True:
            got = n2.sql("SELECT a.xact_start > s.last_export_at FROM pg_stat_activity a,"
                         " pgsm_internal.pgsm_export_state s"
                         " WHERE a.query = 'pg_stat_monitor worker send' AND a.state = 'active'")
            if got:
                break
            assert time.monotonic() < deadline, "the worker never waited on nb"
            time.sleep(0.1)
        assert got == [(True,)]
    finally:
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1h'", "pgsm_export_interval", None)
        n2.sql("SELECT pg_stat_monitor_sdm_remove_node('nb')")
        send(n2)
        n2.sql("DELETE FROM pgsm_internal.pgsm_sdm_coordinators WHERE node = 'nb'")
        sock.close()


@pytest.mark.parametrize("compression", ["none", "zlib", "zstd"])
def test_each_transport_compression_delivers(quiet_cluster: Cluster, compression: str) -> None:
    """With each pgsm_transport_compression n2's entries reach n1; 'none' puts the raw bytes
    plus a 12-byte header per batch on the wire, zlib and zstd fewer."""
    cluster = quiet_cluster
    n2 = cluster["n2"]
    set_and_reload(n2, "pgsm_transport_compression", compression)
    try:
        time.sleep(0.2)
        before = outbox(n2).get("n1", {"bytes_raw": 0, "bytes_sent": 0, "sent": 0})
        scan_from(cluster, "n1", times=2)
        held = entries(n2, "n1")
        assert send(n2) == held > 0
        after = outbox(n2)["n1"]
        raw, wire = (after[c] - before[c] for c in ("bytes_raw", "bytes_sent"))
        assert after["sent"] - before["sent"] == held
        assert wire == raw + 12 if compression == "none" else 0 < wire < raw
    finally:
        set_and_reload(n2, "pgsm_transport_compression", None)


def test_the_worker_skips_a_pass_while_a_send_holds_the_lock(quiet_cluster: Cluster) -> None:
    """A due drain finds the sender's lock taken (a running pg_stat_monitor_sdm_send()): the
    worker's drain returns at once without passing; once the lock is free it passes."""
    n2 = quiet_cluster["n2"]
    last = "SELECT last_pass_at FROM pgsm_internal.pgsm_sdm_send_state"
    set_and_reload(n2, "pgsm_sdm_send_interval", "'1s'")
    try:
        with n2.connect() as holder, n2.connect() as ticker:
            with holder.transaction():
                holder.execute("LOCK TABLE pgsm_internal.pgsm_sdm_send_state"
                               " IN SHARE ROW EXCLUSIVE MODE")
                before = holder.execute(last).fetchone()
                time.sleep(1.2)                     # a pass is due
                ticker.execute("SET statement_timeout = '5s'")
                started = time.monotonic()
                ticker.execute("SELECT pgsm_internal.pgsm_worker_drain()")
                assert time.monotonic() - started < 3
                assert ticker.execute(last).fetchone() == before
            ticker.execute("SELECT pgsm_internal.pgsm_worker_drain()")
            after = ticker.execute(last).fetchone()
            assert before is not None and after is not None and after[0] > before[0]
    finally:
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1h'")


@pytest.mark.parametrize("part", ["tick", "drain", "send"])
def test_the_worker_yields_a_busy_lock_instead_of_waiting(quiet_cluster: Cluster,
                                                          part: str) -> None:
    """While another session holds the extension's tables (as DROP EXTENSION does), each part
    of the worker's pass gives up within its short lock_timeout, undone and without an error,
    instead of waiting (and deadlocking the DROP), and the server log says so."""
    n2 = quiet_cluster["n2"]
    set_and_reload(n2, "pgsm_sdm_send_interval", "'1s'")
    try:
        time.sleep(1.2)                                 # a drain is due
        with n2.connect() as holder, n2.connect() as worker:
            with holder.transaction():
                holder.execute("LOCK TABLE pgsm_internal.pgsm_sdm_outbox,"
                               " pgsm_internal.pgsm_sdm_send_state,"
                               " pgsm_internal.pgsm_export_state IN ACCESS EXCLUSIVE MODE")
                worker.execute("SET statement_timeout = '10s'")
                started = time.monotonic()
                got = worker.execute(f"SELECT pgsm_internal.pgsm_worker_{part}()").fetchone()
                assert time.monotonic() - started < 5 and got == (0,)
        said = {"tick": "export"}.get(part, part)
        assert f"pg_stat_monitor worker left its {said} to a later pass" in n2.log()
    finally:
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1h'")


def test_the_worker_backs_off_from_a_down_coordinator_and_resumes_soon_after(
        quiet_cluster: Cluster) -> None:
    """1 s interval, n1 down for 6 s: n2's worker fails again and again, never waiting more than
    3 intervals; n1 back, the worker delivers everything within a few seconds, once."""
    cluster = quiet_cluster
    n2 = cluster["n2"]
    scan_from(cluster, "n1", times=2)
    want = for_coordinator(recorded("n2", n2), "n1")
    before = {k: v for k, v in received("n1", cluster["n1"]).items() if k[1] == "n2"}
    cluster["n1"].stop()
    try:
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1s'", "pgsm_export_interval", "1")
        time.sleep(6)
        [(failures, wait)] = n2.sql(
            "SELECT failures, extract(epoch FROM next_attempt - now())::float8"
            " FROM pgsm_internal.pgsm_sdm_coordinators WHERE node = 'n1'")
        assert failures >= 2 and wait <= 3.0
        assert outbox(n2)["n1"]["pending"] >= len(want) > 0
        cluster["n1"].start()
        started = time.monotonic()
        while time.monotonic() - started < 10 and outbox(n2)["n1"]["pending"] > 0:
            time.sleep(0.2)
        assert outbox(n2)["n1"]["pending"] == 0
        got = {k: v for k, v in received("n1", cluster["n1"]).items() if k[1] == "n2"}
        assert_same(got, added(before, want))
    finally:
        if not (cluster["n1"].datadir / "postmaster.pid").exists():
            cluster["n1"].start()
        set_and_reload(n2, "pgsm_sdm_send_interval", "'1h'", "pgsm_export_interval", None)
