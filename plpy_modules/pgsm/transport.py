"""The wire format of a batch of fragment statistics, from a shard to one coordinator.

A payload is a 12-byte header and a body:
    magic b"PGSM" | version (1 byte) | compression (1 byte) | reserved 0 (2 bytes)
    | raw length (4 bytes, big-endian: the body's length before compression)
The body, once decompressed, is compact JSON: the sender and coordinator names, the sender's
stream (a random id made with the sender's outbox, so a recreated outbox starts afresh), the
sequence number (the highest outbox id in the batch), the fragment texts once each, and the
rows column by column (like values side by side compress best), a row's text being an index into
the texts.  zlib and zstd start from a fixed dictionary (DICTIONARY, part of the version).

decode() trusts nothing: the declared raw length is capped before anything is decompressed,
decompression stops at that length (a bomb is never expanded), and every field is checked for
type and range.  Every refusal is a TransportError with a SQLSTATE.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import zstandard

from pgsm.errors import PgsmError

MAGIC = b"PGSM"
VERSION = 1
HEADER = struct.Struct(">4sBBHI")
COMPRESSIONS = {"none": 0, "zlib": 1, "zstd": 2}
# a batch decompresses to at most this many bytes; the sender cuts its batches far below
MAX_RAW_BYTES = 16 << 20
MAX_ROWS = 100_000
# batches are small (a few hundred kB at most): the strongest levels cost milliseconds
ZSTD_LEVEL = 19
MAX_TEXT_BYTES = 64 << 10
NODE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
STREAM = re.compile(r"[0-9a-f]{32}")

INVALID_BINARY_REPRESENTATION = "22P03"
FEATURE_NOT_SUPPORTED = "0A000"
PROGRAM_LIMIT_EXCEEDED = "54000"

INT64 = (-(1 << 63), (1 << 63) - 1)
COUNT = (0, (1 << 63) - 1)
OID = (0, (1 << 32) - 1)
# microseconds since 1970-01-01 UTC, up to the year 10000
MICROS = (0, 253_402_300_800_000_000)
WAL_BYTES = (0, (1 << 64) - 1)
FLOAT = (0, 0)  # finite and >= 0

# the fields of a row, in wire order: name, type, range, and how a coordinator merges it
# ("id": the outbox id, "text": an index into the texts, "key": part of the entry's identity,
# "bucket": its time, "sum", "min" and "max": counters)
ROW_FIELDS: tuple[tuple[str, str, tuple[int, int], str], ...] = (
    ("id", "int", (1, INT64[1]), "id"),
    ("text", "index", (0, 0), "text"),   # 0 .. number of texts - 1
    ("parent_queryid", "int", INT64, "key"),
    ("fragment_queryid", "int", INT64, "key"),
    ("dbid", "int", OID, "key"),
    ("userid", "int", OID, "key"),
    ("bucket_start", "int", MICROS, "bucket"),
    ("calls", "int", COUNT, "sum"),
    ("rows", "int", COUNT, "sum"),
    ("total_exec_time", "float", FLOAT, "sum"),
    ("min_exec_time", "float", FLOAT, "min"),
    ("max_exec_time", "float", FLOAT, "max"),
    ("shared_blks_hit", "int", COUNT, "sum"),
    ("shared_blks_read", "int", COUNT, "sum"),
    ("temp_blks_written", "int", COUNT, "sum"),
    ("wal_bytes", "int", WAL_BYTES, "sum"),
)
# Version 1's dictionary (zstd raw content, zlib zdict): what every batch repeats (the body's
# keys) and the words of postgres_fdw's remote SQL.  A batch is small, so a compressor that
# starts from these strings saves more than the level does.  Changing it makes a new version.
DICTIONARY = (
    " /*pgsm_coord='',pgsm_qid='-'*/\",\"SELECT  FROM public. WHERE ((  = $1::integer)) AND (("
    "$2::integer)) UPDATE public. SET  = ( + $1::integer) INSERT INTO public.(, ) VALUES ($1, $2,"
    " $3, $4, $5) DECLARE c1 CURSOR FOR  ORDER BY  ASC NULLS LAST  GROUP BY  count(*) sum( r1."
    " INNER JOIN  LEFT JOIN  ON (((r1. = r2.))) RETURNING  DELETE FROM  "
    '{"sender":"","coordinator":"","stream":"","seq":,"texts":[""],"columns":{'
    + ",".join(f'"{field[0]}":[' for field in ROW_FIELDS) + "]}}"
).encode()
ZSTD_DICTIONARY = zstandard.ZstdCompressionDict(DICTIONARY,
                                                dict_type=zstandard.DICT_TYPE_RAWCONTENT)

FIELD_NAMES = tuple(field[0] for field in ROW_FIELDS)
# the counter a row's calls are; min and max count only over entries with calls
CALLS = "calls"
BODY_KEYS = {"sender", "coordinator", "stream", "seq", "texts", "columns"}


class TransportError(PgsmError):
    """A payload that is refused; its sqlstate says why."""


def _bad(message: str, detail: str | None = None) -> TransportError:
    return TransportError(message, INVALID_BINARY_REPRESENTATION, detail=detail)


@dataclass(frozen=True)
class Batch:
    """What one payload carries: the rows column by column, named as in ROW_FIELDS."""

    sender: str
    coordinator: str
    stream: str
    seq: int
    texts: list[str]
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.columns["id"])


def make_batch(sender: str, coordinator: str, stream: str,
               entries: list[tuple[str, dict[str, Any]]]) -> Batch:
    """A batch of (text, fields) entries in outbox id order; each text is stored once."""
    index: dict[str, int] = {}
    columns: dict[str, list[Any]] = {name: [] for name in FIELD_NAMES}
    for text, fields in entries:
        for name in FIELD_NAMES:
            columns[name].append(index.setdefault(text, len(index)) if name == "text"
                                 else fields[name])
    seq = columns["id"][-1] if entries else 0
    batch = Batch(sender, coordinator, stream, seq, list(index), columns)
    validate(batch)
    return batch


def encode(batch: Batch, compression: str) -> tuple[bytes, int]:
    """The payload of a batch and the length of its uncompressed body."""
    if compression not in COMPRESSIONS:
        raise PgsmError(f"unknown transport compression \"{compression}\"", "22023",
                        hint="Use none, zlib or zstd.")
    body = json.dumps({
        "sender": batch.sender, "coordinator": batch.coordinator, "stream": batch.stream,
        "seq": batch.seq, "texts": batch.texts,
        "columns": {name: batch.columns[name] for name in FIELD_NAMES},
    }, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(body) > MAX_RAW_BYTES:
        raise TransportError(f"batch of {len(body)} bytes is over the limit of {MAX_RAW_BYTES}",
                             PROGRAM_LIMIT_EXCEEDED)
    if compression == "zlib":
        deflater = zlib.compressobj(9, zdict=DICTIONARY)
        packed = deflater.compress(body) + deflater.flush()
    elif compression == "zstd":
        packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL,
                                          dict_data=ZSTD_DICTIONARY).compress(body)
    else:
        packed = body
    header = HEADER.pack(MAGIC, VERSION, COMPRESSIONS[compression], 0, len(body))
    return header + packed, len(body)


def _inflate(code: int, packed: bytes, raw_len: int) -> bytes:
    """The body, never more than raw_len + 1 bytes of it (so a longer one is detected)."""
    try:
        if code == COMPRESSIONS["none"]:
            return packed
        if code == COMPRESSIONS["zlib"]:
            inflater = zlib.decompressobj(zdict=DICTIONARY)
            out = inflater.decompress(packed, raw_len + 1)
            if len(out) <= raw_len and (not inflater.eof or inflater.unused_data):
                raise _bad("zlib stream of the payload is truncated or followed by other data")
            return out
        reader = zstandard.ZstdDecompressor(dict_data=ZSTD_DICTIONARY).stream_reader(
            packed, read_size=16384)
        return bytes(reader.read(raw_len + 1)) + bytes(reader.read(1))
    except (zlib.error, zstandard.ZstdError) as error:
        name = "zlib" if code == COMPRESSIONS["zlib"] else "zstd"
        raise _bad(f"payload is not valid {name} data", detail=f"{error}.") from None


def decode(payload: bytes, max_raw_bytes: int = MAX_RAW_BYTES) -> Batch:
    """The batch of a payload, or a TransportError; decompresses at most max_raw_bytes."""
    if len(payload) < HEADER.size:
        raise _bad(f"payload of {len(payload)} bytes is shorter than its header")
    magic, version, code, reserved, raw_len = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise _bad("payload is not a pg_stat_monitor batch", detail="Its magic bytes are wrong.")
    if version != VERSION:
        raise TransportError(f"batch format version {version} is not supported",
                             FEATURE_NOT_SUPPORTED,
                             detail=f"This node reads version {VERSION}.",
                             hint="Run the same pg_stat_monitor release on every node.")
    if code not in COMPRESSIONS.values() or reserved != 0:
        raise _bad(f"unknown compression code {code} in the payload"
                   if reserved == 0 else "reserved header bytes of the payload are not zero")
    packed = payload[HEADER.size:]
    if raw_len > max_raw_bytes or len(packed) > max_raw_bytes:
        raise TransportError(
            f"batch of {max(raw_len, len(packed))} bytes is over the limit of {max_raw_bytes}",
            PROGRAM_LIMIT_EXCEEDED)
    body = _inflate(code, packed, raw_len)
    if len(body) != raw_len:
        size = f"more than {raw_len}" if len(body) > raw_len else str(len(body))
        raise _bad(f"payload decompresses to {size} bytes, its header declares {raw_len}",
                   detail="It is truncated, corrupted or not compressed as it declares.")
    return parse(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a batch may hold")


def parse(body: bytes) -> Batch:
    """The batch of a decompressed body, every field checked."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _bad("batch body is not valid JSON", detail=f"{error}.") from None
    if not isinstance(doc, dict) or set(doc) != BODY_KEYS:
        raise _bad("batch body does not have the fields of a batch",
                   detail=f"Expected {', '.join(sorted(BODY_KEYS))}.")
    columns = doc["columns"]
    if (not isinstance(doc["texts"], list) or not isinstance(columns, dict)
            or set(columns) != set(FIELD_NAMES)
            or any(not isinstance(c, list) for c in columns.values())):
        raise _bad("batch body does not have the texts and columns of a batch",
                   detail=f"The columns are {', '.join(FIELD_NAMES)}.")
    batch = Batch(doc["sender"], doc["coordinator"], doc["stream"], doc["seq"], doc["texts"],
                  {name: columns[name] for name in FIELD_NAMES})
    validate(batch)
    return batch


def _valid(kind: str, bounds: tuple[int, int], value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "float":
        return isinstance(value, float) and math.isfinite(value) and value >= 0
    return isinstance(value, int) and bounds[0] <= value <= bounds[1]


def validate(batch: Batch) -> None:
    """Check every field of a batch: names, stream, texts, each column's type and range, ids."""
    for what in ("sender", "coordinator"):
        name = getattr(batch, what)
        if not isinstance(name, str) or NODE_NAME.fullmatch(name) is None:
            raise _bad(f"{what} of the batch is not a valid node name: {name!r:.80}",
                       detail="A node name is 1 to 63 letters, digits, '_', '.' or '-'.")
    if not isinstance(batch.stream, str) or STREAM.fullmatch(batch.stream) is None:
        raise _bad("stream of the batch is not 32 lower-case hexadecimal digits")
    for i, text in enumerate(batch.texts):
        if (not isinstance(text, str) or "\0" in text
                or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES):
            raise _bad(f"text {i} of the batch is not a text of at most {MAX_TEXT_BYTES} bytes")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"text {i} of the batch is not valid Unicode") from None
    if {len(c) for c in batch.columns.values()} != {len(batch)}:
        raise _bad("columns of the batch are not all of the same length")
    if not 0 < len(batch) <= MAX_ROWS:
        raise _bad(f"batch has {len(batch)} rows, not 1 to {MAX_ROWS}")
    for name, kind, bounds, _ in ROW_FIELDS:
        limits = bounds if kind != "index" else (0, len(batch.texts) - 1)
        for i, value in enumerate(batch.columns[name]):
            if not _valid(kind, limits, value):
                raise _bad(f"field {name} of row {i} of the batch is out of range: {value!r:.40}")
    ids = batch.columns["id"]
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise _bad("row ids of the batch are not strictly increasing")
    if type(batch.seq) is not int or batch.seq != ids[-1]:
        raise _bad(f"sequence number of the batch is not its last row id: {batch.seq!r:.40}")
