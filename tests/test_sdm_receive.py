"""A coordinator takes in shards' batches through pg_stat_monitor_sdm_receive() (API.md section 7).

Batches are made by pgsm.transport (tests/sdm_batches.py); each is applied once per outbox entry,
a bad one is refused with a SQLSTATE and changes nothing, and the views show what arrived.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import psycopg
import pytest
import zstandard

from fixtures import ServerFactory, error_of, one, rows
from pgsm import transport
from pgserver import PgServer
from sdm_batches import START_US, batch, malformed, payload

PLAIN, READER = "sdm_plain", "sdm_reader"
Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def coordinator(make_server: ServerFactory) -> PgServer:
    """A server named n1, with a plain role and a pg_read_all_stats member."""
    server = make_server({"pg_stat_monitor.pgsm_node_name": "'n1'"})
    server.sql(f"CREATE ROLE {PLAIN} LOGIN; CREATE ROLE {READER} LOGIN IN ROLE pg_read_all_stats")
    return server


@pytest.fixture
def n1(coordinator: PgServer) -> Iterator[Conn]:
    """A superuser session on n1, nothing received yet."""
    with coordinator.connect() as c:
        c.execute("TRUNCATE pgsm_internal.pgsm_sdm_received, pgsm_internal.pgsm_sdm_senders")
        yield c


def receive(conn: Conn, data: bytes | None) -> int:
    """pg_stat_monitor_sdm_receive(data)."""
    return int(one(conn, "SELECT pg_stat_monitor_sdm_receive(%s)", data))


def state(conn: Conn) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Everything received and every sender's row."""
    return (rows(conn, "SELECT * FROM pgsm_internal.pgsm_sdm_received ORDER BY 1, 2, 3, 4, 5, 6"),
            rows(conn, "SELECT * FROM pgsm_internal.pgsm_sdm_senders ORDER BY node"))


def fragments(conn: Conn, node: str = "n2") -> dict[tuple[int, int, int], tuple[Any, ...]]:
    """(bucket in µs, parent, fragment) -> (calls, rows, total, min, max, hit, read, temp, wal)."""
    result = rows(conn, """
        SELECT (extract(epoch FROM bucket_start_time) * 1000000)::bigint, queryid,
               fragment_queryid, calls, rows, total_exec_time, min_exec_time, max_exec_time,
               shared_blks_hit, shared_blks_read, temp_blks_written, wal_bytes::bigint
        FROM pg_stat_monitor_sdm_fragments WHERE node = %s""", node)
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in result}


def expected(b: transport.Batch, first: int = 0) -> dict[tuple[int, int, int], tuple[Any, ...]]:
    """What fragments() shows after the rows of b from position first (one row per key)."""
    c = b.columns
    counters = ("calls", "rows", "total_exec_time", "min_exec_time", "max_exec_time",
                "shared_blks_hit", "shared_blks_read", "temp_blks_written", "wal_bytes")
    return {(c["bucket_start"][i], c["parent_queryid"][i], c["fragment_queryid"][i]):
            tuple(c[name][i] for name in counters) for i in range(first, len(b))}


def stats_updated(conn: Conn) -> dict[str, tuple[int, int, int]]:
    """node -> (entries_received, batches, bytes_received)."""
    return {r[0]: (r[1], r[3], r[4]) for r in rows(
        conn, "SELECT * FROM pg_stat_monitor_sdm_stats_updated()")}


@pytest.mark.parametrize("compression", ["none", "zlib", "zstd"])
def test_a_batch_is_applied_once_and_shown_per_fragment(n1: Conn, compression: str) -> None:
    """60 entries from n2 under each compression: 60 applied, each shown exactly as sent."""
    b = batch(60)
    data = payload(b, compression)
    assert receive(n1, data) == 60
    assert fragments(n1) == expected(b)
    assert stats_updated(n1) == {"n2": (60, 1, len(data))}
    texts = dict(rows(n1, "SELECT DISTINCT fragment_queryid, fragment_query"
                          " FROM pg_stat_monitor_sdm_fragments"))
    c = b.columns
    assert texts == {c["fragment_queryid"][i]: b.texts[c["text"][i]] for i in range(60)}


def test_a_resent_batch_is_applied_once(n1: Conn) -> None:
    """The same payload again (its acknowledgement was lost): 0 applied, counters unchanged."""
    b = batch(60)
    data = payload(b)
    assert receive(n1, data) == 60
    assert receive(n1, data) == 0
    assert fragments(n1) == expected(b)
    assert stats_updated(n1) == {"n2": (60, 2, 2 * len(data))}


def test_an_overlapping_batch_applies_only_its_new_entries(n1: Conn) -> None:
    """Ids 1-60, then ids 31-90: only 61-90 are added; sums are those of the applied rows."""
    first, second = batch(60), batch(60, first_id=31)
    assert receive(n1, payload(first)) == 60
    assert receive(n1, payload(second)) == 30
    old, new = expected(first), expected(second, first=30)
    assert set(new) <= set(old)
    calls = {k: v[0] for k, v in fragments(n1).items()}
    assert calls == {k: v[0] + (new[k][0] if k in new else 0) for k, v in old.items()}
    assert stats_updated(n1)["n2"][0] == 90


def test_a_new_stream_from_a_sender_starts_again(n1: Conn) -> None:
    """A sender whose outbox was made anew (another stream) starts again from id 1."""
    assert receive(n1, payload(batch(10))) == 10
    assert receive(n1, payload(batch(10, stream="f" * 32))) == 10
    assert stats_updated(n1)["n2"][0] == 20


def test_two_streams_of_one_sender_keep_their_own_watermarks(n1: Conn) -> None:
    """Stream A's batch, stream B's, then A's again (its acknowledgement was lost): the resend
    is recognised although B came in between; the counters are the sender's sums."""
    a, b = payload(batch(10)), payload(batch(10, stream="f" * 32))
    assert [receive(n1, a), receive(n1, b), receive(n1, a)] == [10, 10, 0]
    assert stats_updated(n1)["n2"] == (20, 3, 2 * len(a) + len(b))


def test_a_batch_for_another_node_is_refused_and_changes_nothing(n1: Conn) -> None:
    """A batch addressed to n3: 22023 naming both nodes; nothing received, no sender row."""
    receive(n1, payload(batch(5, sender="n3")))
    before = state(n1)
    err = error_of(n1, "SELECT pg_stat_monitor_sdm_receive(%s)",
                   payload(batch(5, coordinator="n3")))
    assert err.sqlstate == "22023"
    assert (err.diag.message_primary or "").endswith(
        'batch is addressed to node "n3", not to this node "n1"')
    assert state(n1) == before


def zstd_bomb() -> bytes:
    """64 MiB of zeros compressed as zstd, declared as 100 bytes."""
    packed = zstandard.ZstdCompressor(dict_data=transport.ZSTD_DICTIONARY).compress(
        bytes(64 << 20))
    return transport.HEADER.pack(transport.MAGIC, transport.VERSION, 2, 0, 100) + packed


def relabel(data: bytes, version: int | None = None, code: int | None = None) -> bytes:
    """The payload with another version or compression code in its header."""
    magic, v, c, reserved, raw_len = transport.HEADER.unpack_from(data)
    return transport.HEADER.pack(magic, v if version is None else version,
                                 c if code is None else code, reserved, raw_len) + data[12:]


BAD_PAYLOADS: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated": (lambda: payload(batch(60))[:-7], "22P03"),
    "header only": (lambda: payload(batch(60))[:12], "22P03"),
    "wrong compression": (lambda: relabel(payload(batch(60), "zstd"), code=1), "22P03"),
    "not compressed as declared": (lambda: relabel(payload(batch(60), "none"), code=2), "22P03"),
    "wrong version": (lambda: relabel(payload(batch(60)), version=2), "0A000"),
    "bomb": (zstd_bomb, "22P03"),
    "over the limit": (lambda: transport.HEADER.pack(
        transport.MAGIC, 1, 0, 0, transport.MAX_RAW_BYTES + 1), "54000"),
    "negative calls": (lambda: malformed(lambda d: d["columns"]["calls"].__setitem__(0, -1)),
                       "22P03"),
    "bad node name": (lambda: malformed(lambda d: d.update(sender="n2; DROP")), "22P03"),
    "garbage": (lambda: b"GET / HTTP/1.1\r\n\r\n", "22P03"),
}


@pytest.mark.parametrize("kind", list(BAD_PAYLOADS))
def test_a_bad_payload_is_refused_and_changes_nothing(n1: Conn, kind: str) -> None:
    """Each kind of bad payload: its SQLSTATE, a one-line message; state as before."""
    make, sqlstate = BAD_PAYLOADS[kind]
    receive(n1, payload(batch(20)))
    before = state(n1)
    started = time.monotonic()
    err = error_of(n1, "SELECT pg_stat_monitor_sdm_receive(%s)", make())
    assert time.monotonic() - started < 5
    assert err.sqlstate == sqlstate, err.diag.message_primary
    assert "\n" not in (err.diag.message_primary or "\n")
    assert state(n1) == before


def test_a_null_payload_is_refused(n1: Conn) -> None:
    """NULL: 22004."""
    assert error_of(n1, "SELECT pg_stat_monitor_sdm_receive(NULL)").sqlstate == "22004"


def test_only_granted_roles_may_call_receive(n1: Conn, coordinator: PgServer) -> None:
    """A plain role: 42501 and nothing changes; granted EXECUTE, it applies a batch."""
    data = payload(batch(8))
    with coordinator.connect(user=PLAIN) as plain:
        assert error_of(plain, "SELECT pg_stat_monitor_sdm_receive(%s)", data).sqlstate == "42501"
        assert state(n1) == ([], [])
        n1.execute(f"GRANT EXECUTE ON FUNCTION pg_stat_monitor_sdm_receive(bytea) TO {PLAIN}")
        try:
            assert receive(plain, data) == 8
        finally:
            n1.execute(f"REVOKE EXECUTE ON FUNCTION pg_stat_monitor_sdm_receive(bytea)"
                       f" FROM {PLAIN}")


def test_stats_updated_counts_per_sender_and_reset_zeroes_them(
        n1: Conn, coordinator: PgServer) -> None:
    """n2 and n3 counted apart; a plain role may read but not reset (42501); after a reset the
    counters are zero and a resend is still recognised."""
    d2, d3 = payload(batch(12)), payload(batch(7, sender="n3"))
    receive(n1, d2)
    receive(n1, d3)
    receive(n1, payload(batch(5, first_id=13)))
    assert stats_updated(n1) == {"n2": (17, 2, len(d2) + len(payload(batch(5, first_id=13)))),
                                 "n3": (7, 1, len(d3))}
    with coordinator.connect(user=PLAIN) as plain:
        assert stats_updated(plain)["n3"] == (7, 1, len(d3))
        err = error_of(plain, "SELECT pg_stat_monitor_sdm_stats_updated_reset()")
        assert err.sqlstate == "42501"
    n1.execute("SELECT pg_stat_monitor_sdm_stats_updated_reset()")
    assert stats_updated(n1) == {"n2": (0, 0, 0), "n3": (0, 0, 0)}
    assert rows(n1, "SELECT count(*) FROM pg_stat_monitor_sdm_stats_updated()"
                    " WHERE last_received_at IS NULL") == [(2,)]
    assert receive(n1, d2) == 0
    assert stats_updated(n1)["n2"] == (0, 1, len(d2))


def test_fragment_texts_are_hidden_from_other_roles(n1: Conn, coordinator: PgServer) -> None:
    """Counters visible to all; texts to pg_read_all_stats members only (no parent is theirs)."""
    receive(n1, payload(batch(10)))
    with coordinator.connect(user=PLAIN) as plain:
        shown = rows(plain, "SELECT DISTINCT fragment_query FROM pg_stat_monitor_sdm_fragments")
        assert shown == [("<insufficient privilege>",)]
        assert one(plain, "SELECT sum(calls) FROM pg_stat_monitor_sdm_fragments") == sum(
            batch(10).columns["calls"])
    with coordinator.connect(user=READER) as reader:
        assert one(reader, "SELECT count(DISTINCT fragment_query)"
                           " FROM pg_stat_monitor_sdm_fragments") == 10


def test_statements_join_their_own_statistics_and_fragment_sums(n1: Conn) -> None:
    """A statement run on n1 with fragments from n2 and n3 in its bucket: own calls and rows,
    2 shards, fragment sums, cluster totals = own + fragments."""
    n1.execute("SELECT pg_stat_monitor_reset()")
    for _ in range(3):
        n1.execute("SELECT 1 AS distributed FROM generate_series(1, 4)")
    qid, bucket_us, own_time = rows(n1, """
        SELECT queryid, (extract(epoch FROM bucket_start_time) * 1000000)::bigint,
               total_exec_time FROM pg_stat_monitor
        WHERE query LIKE 'SELECT 1 AS distributed%'""")[0]
    sent = []
    for sender in ("n2", "n3"):
        b = batch(4, sender=sender)
        b.columns["parent_queryid"][:] = [qid] * 4
        b.columns["bucket_start"][:] = [bucket_us] * 4
        receive(n1, payload(b))
        sent.append(b)
    [row] = rows(n1, """
        SELECT calls, rows, shards, fragments, fragment_calls, fragment_rows,
               fragment_total_exec_time, cluster_total_exec_time, fragment_wal_bytes::bigint
        FROM pg_stat_monitor_sdm_statements WHERE queryid = %s""", qid)
    calls = sum(sum(b.columns["calls"]) for b in sent)
    frag_time = sum(sum(b.columns["total_exec_time"]) for b in sent)
    assert row[:6] == (3, 12, 2, 8, calls, sum(sum(b.columns["rows"]) for b in sent))
    assert row[6] == pytest.approx(frag_time, rel=1e-12)
    assert row[7] == pytest.approx(frag_time + own_time, rel=1e-12)
    assert row[8] == sum(sum(b.columns["wal_bytes"]) for b in sent)


def test_fragments_past_the_history_retention_are_dropped_by_the_worker_tick(n1: Conn) -> None:
    """A bucket 40 days old is removed by the tick; one of a day ago (retention 30) stays."""
    old = batch(3)
    old.columns["bucket_start"][:] = [START_US - 40 * 86_400_000_000] * 3
    receive(n1, payload(old))
    receive(n1, payload(batch(2, first_id=4)))
    n1.execute("SELECT pgsm_internal.pgsm_worker_tick()")
    assert one(n1, "SELECT count(*) FROM pgsm_internal.pgsm_sdm_received") == 2
