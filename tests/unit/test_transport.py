"""transport: batches round-trip under each compression; bad payloads are refused with SQLSTATEs."""

from __future__ import annotations

import json
import tracemalloc
import zlib
from typing import Any, Callable

import pytest
import zstandard

from pgsm import transport
from pgsm.errors import PgsmError
from pgsm.transport import HEADER, MAGIC, VERSION, TransportError
from sdm_batches import STREAM, batch, payload

BAD = "22P03"


def header(raw_len: int, code: int = 2, version: int = VERSION, magic: bytes = MAGIC) -> bytes:
    """A payload header."""
    return HEADER.pack(magic, version, code, 0, raw_len)


def body_of(b: transport.Batch) -> dict[str, Any]:
    """The JSON document of a batch's body."""
    return dict(json.loads(transport.encode(b, "none")[0][HEADER.size:]))


def plain(doc: Any) -> bytes:
    """An uncompressed payload of a JSON document."""
    body = json.dumps(doc).encode()
    return header(len(body), code=0) + body


def refused(data: bytes, sqlstate: str = BAD) -> str:
    """decode() refuses data with sqlstate; returns the message."""
    with pytest.raises(TransportError) as info:
        transport.decode(data)
    assert info.value.sqlstate == sqlstate, info.value.message
    return info.value.message


@pytest.mark.parametrize("compression", ["none", "zlib", "zstd"])
def test_each_compression_round_trips(compression: str) -> None:
    """60 entries encode and decode to the same batch; texts are stored once each."""
    b = batch(60)
    data, raw_len = transport.encode(b, compression)
    assert transport.decode(data) == b
    assert len(b.texts) == 20
    assert raw_len == len(transport.encode(b, "none")[0]) - HEADER.size
    assert data[4:6] == bytes([VERSION, transport.COMPRESSIONS[compression]])


def test_floats_and_extreme_integers_round_trip_exactly() -> None:
    """Doubles, int64 bounds, the largest oid and a 64-bit wal_bytes come back bit for bit."""
    b = batch(2)
    extremes = {"parent_queryid": -(1 << 63), "fragment_queryid": (1 << 63) - 1,
                "dbid": (1 << 32) - 1, "total_exec_time": 0.1 + 0.2, "min_exec_time": 5e-324,
                "wal_bytes": (1 << 64) - 1}
    for name, value in extremes.items():
        b.columns[name][0] = value
    assert transport.decode(transport.encode(b, "zstd")[0]) == b


def test_zstd_is_at_least_five_times_smaller_than_none_on_a_pgbench_batch() -> None:
    """60 pgbench-like entries with their texts: zstd >= 5x smaller, zlib smaller than none."""
    b = batch(60)
    sizes = {c: len(transport.encode(b, c)[0]) for c in ("none", "zlib", "zstd")}
    assert sizes["none"] >= 5 * sizes["zstd"], sizes
    assert sizes["zlib"] < sizes["none"] / 4, sizes


@pytest.mark.parametrize("compression", ["none", "zlib", "zstd"])
def test_a_truncated_payload_is_refused(compression: str) -> None:
    """Cut anywhere (in the header or the body), the payload is refused with 22P03."""
    data = payload(batch(60), compression)
    for cut in (0, 5, HEADER.size - 1, HEADER.size, HEADER.size + 1, len(data) // 2,
                len(data) - 1):
        refused(data[:cut])


@pytest.mark.parametrize(("declared", "actual"), [
    ("zlib", "zstd"), ("zstd", "zlib"), ("none", "zstd"), ("zstd", "none"), ("zlib", "none"),
])
def test_a_payload_declaring_the_wrong_compression_is_refused(declared: str,
                                                              actual: str) -> None:
    """A body compressed with one method under a header naming another: 22P03."""
    data = payload(batch(60), actual)
    raw_len = HEADER.unpack_from(data)[4]
    relabelled = header(raw_len, transport.COMPRESSIONS[declared]) + data[HEADER.size:]
    refused(relabelled)


def test_an_unknown_compression_code_is_refused() -> None:
    """Compression code 7: 22P03, the code named."""
    data = payload(batch(3), "none")
    assert "code 7" in refused(header(HEADER.unpack_from(data)[4], code=7) + data[HEADER.size:])


@pytest.mark.parametrize("version", [0, 2, 255])
def test_a_payload_of_another_format_version_is_refused(version: int) -> None:
    """Any version but 1: 0A000 feature_not_supported."""
    data = payload(batch(3), "zstd")
    wrong = header(HEADER.unpack_from(data)[4], version=version) + data[HEADER.size:]
    assert f"version {version}" in refused(wrong, "0A000")


def test_a_payload_without_the_magic_is_refused() -> None:
    """Any other first four bytes: 22P03."""
    data = payload(batch(3), "none")
    refused(b"XXXX" + data[4:])


def bomb(method: str) -> bytes:
    """256 MiB of zeros, compressed as the transport does (with its dictionary)."""
    zeros = bytes(256 << 20)
    if method == "zlib":
        deflater = zlib.compressobj(9, zdict=transport.DICTIONARY)
        return deflater.compress(zeros) + deflater.flush()
    return zstandard.ZstdCompressor(level=3, dict_data=transport.ZSTD_DICTIONARY).compress(zeros)


@pytest.mark.parametrize("method", ["zstd", "zlib"])
def test_a_decompression_bomb_is_refused_without_being_expanded(method: str) -> None:
    """256 MiB of zeros in under 1 MiB: declared small, it is refused having produced no more
    than the declared size (little memory used); declared large, it is over the limit."""
    code, packed = transport.COMPRESSIONS[method], bomb(method)
    assert len(packed) < 1 << 20
    tracemalloc.start()
    try:
        message = refused(header(1000, code) + packed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "more than 1000 bytes" in message
    assert peak < 4 << 20, peak
    refused(header(256 << 20, code) + packed, "54000")


def test_a_payload_over_the_size_limit_is_refused_before_decompression() -> None:
    """Declared raw length above the limit: 54000, whatever follows."""
    refused(header(transport.MAX_RAW_BYTES + 1) + b"\0", "54000")


def test_data_after_the_compressed_body_is_refused() -> None:
    """A second zstd frame, or bytes after the zlib stream: 22P03."""
    for compression in ("zstd", "zlib"):
        data = payload(batch(3), compression)
        refused(data + data[HEADER.size:])


@pytest.mark.parametrize("change", [
    lambda d: d.pop("stream"),
    lambda d: d.update(extra=1),
    lambda d: d.update(sender="n 2"),
    lambda d: d.update(sender=""),
    lambda d: d.update(coordinator="x" * 64),
    lambda d: d.update(coordinator="n1'; DROP TABLE t; --"),
    lambda d: d.update(stream="ABC"),
    lambda d: d.update(seq=999),
    lambda d: d.update(seq=float(d["seq"])),
    lambda d: d.update(texts="one text"),
    lambda d: d["texts"].__setitem__(0, 5),
    lambda d: d["texts"].__setitem__(0, "a\u0000b"),
    lambda d: d["columns"].pop("wal_bytes"),
    lambda d: d["columns"]["calls"].pop(),
    lambda d: d["columns"]["calls"].__setitem__(0, -1),
    lambda d: d["columns"]["calls"].__setitem__(0, True),
    lambda d: d["columns"]["calls"].__setitem__(0, "1"),
    lambda d: d["columns"]["calls"].__setitem__(0, 1 << 63),
    lambda d: d["columns"]["dbid"].__setitem__(0, 1 << 32),
    lambda d: d["columns"]["parent_queryid"].__setitem__(0, -(1 << 63) - 1),
    lambda d: d["columns"]["text"].__setitem__(0, 99),
    lambda d: d["columns"]["total_exec_time"].__setitem__(0, -0.5),
    lambda d: d["columns"]["total_exec_time"].__setitem__(0, None),
    lambda d: d["columns"]["max_exec_time"].__setitem__(0, 1),
    lambda d: d["columns"]["max_exec_time"].__setitem__(0, 1e400),
    lambda d: d["columns"]["bucket_start"].__setitem__(0, -1),
    lambda d: d["columns"]["id"].__setitem__(1, d["columns"]["id"][0]),
    lambda d: d["columns"]["id"].__setitem__(0, 0),
    lambda d: [c.clear() for c in d["columns"].values()],
], ids=lambda f: "")
def test_a_malformed_field_is_refused(change: Callable[[dict[str, Any]], Any]) -> None:
    """Each wrong, missing, extra or out-of-range field: 22P03."""
    doc = body_of(batch(3))
    change(doc)
    refused(plain(doc))


def test_not_a_number_and_invalid_json_are_refused() -> None:
    """NaN, Infinity, invalid UTF-8 and a non-object body: 22P03."""
    body = json.dumps(body_of(batch(3))).replace("0.", "NaN_", 1).encode()
    for bad in (body.replace(b"NaN_", b"NaN"), body.replace(b"NaN_", b"Infinity"),
                b"\xff\xfe", b"[1, 2]", b"{"):
        refused(header(len(bad), code=0) + bad)


def test_a_batch_is_made_from_outbox_entries_in_id_order() -> None:
    """make_batch: texts once, indexes in first-use order, seq the last id; the stream kept."""
    b = batch(25, first_id=100)
    assert b.seq == 124 and b.stream == STREAM
    assert b.columns["text"][:6] == [0, 1, 2, 3, 4, 5]
    assert len(b.texts) == len(set(b.texts)) == 20


def test_an_unknown_compression_name_is_an_error() -> None:
    """encode(..., 'lz4'): 22023 with a hint."""
    with pytest.raises(PgsmError) as info:
        transport.encode(batch(2), "lz4")
    assert info.value.sqlstate == "22023"
