"""The shard's sender: fragment table -> durable outbox -> each coordinator, exactly once.

The worker's tick drains the fragment table into the outbox every pgsm_sdm_send_interval (or
when the table is almost full): freeze, INSERT ... SELECT from the frozen entries, and release
them when, and only if, that transaction commits (pgsm.handoff).  Its next transaction sends.

Sending holds the lock of pgsm_sdm_send_state (one pass at a time) and, for each coordinator
with pending entries, sends them in id order, in batches (pgsm.transport), each in a remote
transaction that calls the coordinator's pg_stat_monitor_sdm_receive(); the batch leaves the
outbox in a local subtransaction whose last step is the remote COMMIT, so it leaves only if
that commit succeeded (the acknowledgement).  A batch applied but not acknowledged stays and is
sent again: the coordinator knows the ids it applied (per sender stream) and skips them.

An entry's outbox id is its wire id, given in shared memory when the entry is frozen (see
fragments.c) and kept with it: a frozen entry never changes, and a drain that rolls back (or a
clean restart) leaves it frozen with its id, so a later drain queues it again under the same id:
even when pg_stat_monitor_sdm_send() sent it before its own transaction failed, the coordinator
skips it.  Ids of later freezes are above every id given before: above the base of the last
committed drain (pgsm_sdm_send_state.last_base, durable: a crash or a clock set back cannot
make ids repeat) and the clock.  Only the worker's database drains (another one's outbox would
be a second stream of the same entries).

A coordinator that fails (connection, timeout, error) keeps its entries; it is tried again
after a backoff that doubles from one send interval up to MAX_BACKOFF intervals, so a
coordinator that comes back gets its entries within a few intervals.  A name this node cannot
resolve (pgsm.nodes) opens no connection: its entries are dropped and counted, under its name
for the first MAX_UNRESOLVED names and under OTHER after that (forged tags cannot grow the
table without bound).
"""

from __future__ import annotations

from typing import Any

from pgsm import nodes, settings, transport
from pgsm.catalog import internal
from pgsm.plpy import Plpy

BATCH_ROWS = 2000
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 10_000
MAX_BACKOFF = 3           # send intervals
FULL = 0.9                # the fragment table is "almost full" from here: send now
SEQ_BITS = 20             # a wire id is (base << SEQ_BITS | number), as fragments.c makes it
MAX_UNRESOLVED = 64       # names that never resolved, with a row each in the outbox view
OTHER = "<other>"         # where drops for further such names are counted
# wire fields stored in the outbox under another name (id, the outbox's own, keeps its name)
STORED = {"text": "query", "bucket_start": "bucket_start_time"}


def _stored(name: str) -> str:
    return STORED.get(name, name)


def send_interval_s(plpy: Plpy) -> float:
    """pgsm_sdm_send_interval in seconds."""
    return float(plpy.execute(
        "SELECT setting::float8 * CASE unit WHEN 'ms' THEN 0.001 WHEN 'min' THEN 60 ELSE 1 END"
        " AS s FROM pg_catalog.pg_settings WHERE name = 'pg_stat_monitor.pgsm_sdm_send_interval'"
    )[0]["s"])


def drain(plpy: Plpy) -> int:
    """Move the frozen fragment entries into the outbox, at most pgsm_sdm_outbox_max per
    coordinator (the rest is counted as dropped); returns the entries queued."""
    q = plpy.quote_ident
    cols = ["id", "coordinator"] + [q(_stored(f[0])) for f in transport.ROW_FIELDS
                                    if f[0] != "id"]
    outbox, coordinators = internal(plpy, "pgsm_sdm_outbox"), internal(plpy,
                                                                       "pgsm_sdm_coordinators")
    state = internal(plpy, "pgsm_sdm_send_state")
    below = plpy.execute(f"SELECT {internal(plpy, 'pgsm_freeze_fragments')}(s.last_base) AS b"
                         f" FROM {state} s")[0]["b"]
    plan = plpy.prepare(f"""
        WITH fresh AS (
            SELECT f.*, f.wire_id AS id,
                   row_number() OVER (PARTITION BY f.coordinator ORDER BY f.wire_id) AS n
            FROM {internal(plpy, 'pgsm_fragment_rows')}($1) f
        ), room AS (
            SELECT c.coordinator, $2 - (SELECT count(*) FROM {outbox} o
                                        WHERE o.coordinator = c.coordinator) AS room
            FROM (SELECT DISTINCT fresh.coordinator FROM fresh) c
        ), queued AS (
            INSERT INTO {outbox} ({", ".join(cols)})
            SELECT {", ".join("coalesce(f.query, '')" if c == q("query") else "f." + c
                              for c in cols)}
            FROM fresh f JOIN room r USING (coordinator) WHERE f.n <= r.room
            ORDER BY f.coordinator, f.n
            RETURNING 1
        ), counted AS (
            INSERT INTO {coordinators} AS c (node, dropped)
            SELECT f.coordinator, count(*) FILTER (WHERE f.n > r.room)
            FROM fresh f JOIN room r USING (coordinator) GROUP BY f.coordinator
            ON CONFLICT (node) DO UPDATE SET dropped = c.dropped + excluded.dropped
            RETURNING 1
        ), floor AS (
            UPDATE {state} SET last_base = greatest(last_base,
                (SELECT max(fresh.id) >> {SEQ_BITS} FROM fresh))
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM queued) AS queued, (SELECT count(*) FROM counted) AS c,
               (SELECT count(*) FROM floor) AS f
    """, ["bigint", "bigint"])
    queued = plpy.execute(plan, [below, settings.get_int(plpy, "pgsm_sdm_outbox_max")])
    plpy.execute(plpy.prepare(
        f"SELECT {internal(plpy, 'pgsm_release_fragments_on_commit')}($1)", ["bigint"]), [below])
    return int(queued[0]["queued"])


def _pending(plpy: Plpy, coordinator: str, after: int) -> list[tuple[str, dict[str, Any]]]:
    """The next batch of a coordinator's outbox entries after id ``after``, as (text, fields)."""
    select = ", ".join(
        "(extract(epoch FROM bucket_start_time) * 1000000)::bigint AS bucket_start"
        if name == "bucket_start" else plpy.quote_ident(_stored(name))
        for name in transport.FIELD_NAMES)
    plan = plpy.prepare(
        f"SELECT {select} FROM {internal(plpy, 'pgsm_sdm_outbox')}"
        f" WHERE coordinator = $1 AND id > $2 ORDER BY id LIMIT {BATCH_ROWS}", ["text", "bigint"])
    entries = []
    for row in plpy.execute(plan, [coordinator, after]):
        fields = {name: float(row[name]) if kind == "float" else int(row[name])
                  for name, kind, _, _ in transport.ROW_FIELDS if name != "text"}
        entries.append((str(row["query"]), fields))
    return entries


def _record(plpy: Plpy, coordinator: str, sets: str, args: list[Any], types: list[str]) -> None:
    plpy.execute(plpy.prepare(
        f"UPDATE {internal(plpy, 'pgsm_sdm_coordinators')} SET {sets} WHERE node = $1",
        ["text"] + types), [coordinator] + args)


def _drop_unresolved(plpy: Plpy, coordinator: str, why: str) -> None:
    """Drop a coordinator's entries (no way to reach it), counted, the reason kept."""
    gone = plpy.execute(plpy.prepare(
        f"DELETE FROM {internal(plpy, 'pgsm_sdm_outbox')} WHERE coordinator = $1",
        ["text"]), [coordinator]).nrows()
    _record(plpy, coordinator, "dropped = dropped + $2, last_error = $3, failures = 0,"
            " next_attempt = NULL", [gone, why], ["bigint", "text"])
    _fold_unresolved(plpy, coordinator)


def _fold_unresolved(plpy: Plpy, coordinator: str) -> None:
    """Past MAX_UNRESOLVED names that never took a batch, a further one's row goes into OTHER's
    (its drops added, its reason kept as OTHER's last error)."""
    coordinators = internal(plpy, "pgsm_sdm_coordinators")
    plpy.execute(plpy.prepare(f"""
        WITH unresolved AS (
            SELECT count(*) AS n FROM {coordinators}
            WHERE sent = 0 AND node <> $2 AND last_error IS NOT NULL
        ), folded AS (
            DELETE FROM {coordinators} c USING unresolved u
            WHERE c.node = $1 AND c.sent = 0 AND u.n > $3
              AND NOT EXISTS (SELECT FROM {internal(plpy, 'pgsm_sdm_outbox')} o
                              WHERE o.coordinator = $1)
            RETURNING c.dropped, c.last_error
        )
        INSERT INTO {coordinators} AS c (node, dropped, last_error)
        SELECT $2, f.dropped, f.last_error FROM folded f
        ON CONFLICT (node) DO UPDATE
        SET dropped = c.dropped + excluded.dropped, last_error = excluded.last_error
    """, ["text", "text", "bigint"]), [coordinator, OTHER, MAX_UNRESOLVED])


def _deliver(plpy: Plpy, coordinator: str, conninfo: str, me: str, stream: str,
             compression: str) -> int:
    """Send every pending entry of one coordinator; return the entries acknowledged."""
    import psycopg
    from psycopg import sql

    delivered, after = 0, 0
    outbox = internal(plpy, "pgsm_sdm_outbox")
    with psycopg.connect(conninfo, autocommit=False) as conn:
        schema = conn.execute(
            "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n"
            " ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_monitor'").fetchone()
        if schema is None:
            raise RuntimeError("extension pg_stat_monitor is not installed on the coordinator")
        call = sql.SQL("SELECT {}.pg_stat_monitor_sdm_receive(%s)").format(
            sql.Identifier(schema[0]))
        conn.commit()
        while entries := _pending(plpy, coordinator, after):
            batch = transport.make_batch(me, coordinator, stream, entries)
            payload, raw_len = transport.encode(batch, compression)
            conn.execute(call, [payload])
            with plpy.subtransaction():
                plpy.execute(plpy.prepare(
                    f"DELETE FROM {outbox} WHERE coordinator = $1 AND id <= $2",
                    ["text", "bigint"]), [coordinator, batch.seq])
                _record(plpy, coordinator,
                        "sent = sent + $2, bytes_raw = bytes_raw + $3,"
                        " bytes_sent = bytes_sent + $4, last_sent_at = pg_catalog.now(),"
                        " last_error = NULL, failures = 0, next_attempt = NULL",
                        [len(batch), raw_len, len(payload)], ["bigint", "bigint", "bigint"])
                conn.commit()   # the acknowledgement: if it fails, the entries stay
            delivered += len(batch)
            after = batch.seq
    return delivered


# what a coordinator's receive function answers to a batch it will never take: addressed to
# another node, malformed, over the limit, another format version
REFUSED = {"22023", "22P03", "54000", "0A000"}


def _failed(plpy: Plpy, coordinator: str, error: Exception, interval_s: float) -> None:
    """Keep the error and put the next attempt off (doubling, capped)."""
    message = " ".join(str(error).split()) or type(error).__name__
    _record(plpy, coordinator,
            "last_error = $2, failures = failures + 1, next_attempt = pg_catalog.now()"
            " + pg_catalog.make_interval(secs => $3 * least(2 ^ failures, $4))",
            [message[:1000], interval_s, MAX_BACKOFF], ["text", "float8", "float8"])


def send(plpy: Plpy, force: bool) -> int:
    """Send every coordinator its pending entries (when due, or all if force); return the
    entries acknowledged."""
    me = settings.node_name(plpy)
    stream = plpy.execute(f"SELECT stream FROM {internal(plpy, 'pgsm_sdm_send_state')}")[0][
        "stream"]
    compression = settings.get(plpy, "pgsm_transport_compression")
    interval_s = send_interval_s(plpy)
    due = plpy.execute(plpy.prepare(
        f"SELECT c.node FROM {internal(plpy, 'pgsm_sdm_coordinators')} c"
        f" WHERE EXISTS (SELECT FROM {internal(plpy, 'pgsm_sdm_outbox')} o"
        "               WHERE o.coordinator = c.node)"
        " AND ($1 OR c.next_attempt IS NULL OR c.next_attempt <= pg_catalog.now())"
        " ORDER BY c.node", ["bool"]), [force])
    delivered = 0
    for row in due:
        coordinator = str(row["node"])
        try:
            base = nodes.conninfo(plpy, coordinator)
        except nodes.Unresolved as why:
            _drop_unresolved(plpy, coordinator, str(why))
            continue
        try:
            conninfo = nodes.connection_string(base, CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_MS)
            delivered += _deliver(plpy, coordinator, conninfo, me, stream, compression)
        except (plpy.Error, plpy.SPIError):
            raise
        except Exception as error:  # the coordinator's problem: the others still get theirs
            state = getattr(error, "sqlstate", None)
            if state in REFUSED:
                # it will refuse these every time: sending them again would only hold up
                # what comes after, so they are dropped and counted
                _drop_unresolved(plpy, coordinator, f"refused by the coordinator ({state}): "
                                 + " ".join(str(error).split())[:900])
            else:
                _failed(plpy, coordinator, error, interval_s)
    return delivered


def _lock(plpy: Plpy, nowait: bool = False) -> bool:
    """Take the sender's lock; False if nowait and another pass holds it."""
    try:
        with plpy.subtransaction():
            plpy.execute(f"LOCK TABLE {internal(plpy, 'pgsm_sdm_send_state')}"
                         f" IN SHARE ROW EXCLUSIVE MODE{' NOWAIT' if nowait else ''}")
    except plpy.spiexceptions.LockNotAvailable:
        return False
    return True


def drains_here(plpy: Plpy) -> bool:
    """Whether this is the worker's database, the one that drains the fragment table."""
    return bool(plpy.execute(
        "SELECT pg_catalog.current_database() OPERATOR(pg_catalog.=)"
        " pg_catalog.current_setting('pg_stat_monitor.pgsm_worker_database') AS here")[0]["here"])


def send_now(plpy: Plpy, in_block: bool) -> int:
    """pg_stat_monitor_sdm_send(): send what is pending, drain, send that too.

    Inside a transaction block, or in a database other than the worker's, it only sends what
    the outbox already holds (see the module's comment).
    """
    _lock(plpy)
    delivered = send(plpy, force=True)
    if in_block:
        return delivered
    if not drains_here(plpy):
        plpy.notice("pg_stat_monitor drains fragment statistics only in the worker's database",
                    detail="This database's outbox was sent; nothing was drained.",
                    hint="Call it in the database pg_stat_monitor.pgsm_worker_database names.")
        return delivered
    drain(plpy)
    delivered += send(plpy, force=True)
    plpy.execute(f"UPDATE {internal(plpy, 'pgsm_sdm_send_state')} SET last_pass_at = now()")
    return delivered


def tick(plpy: Plpy) -> int:
    """The worker's drain, every pgsm_sdm_send_interval or when the fragment table is almost
    full; returns the entries queued.  Sending is the worker's next transaction."""
    state = internal(plpy, "pgsm_sdm_send_state")
    info = plpy.execute(f"SELECT * FROM {internal(plpy, 'pgsm_fragment_info')}()")[0]
    full = info["fragments"] >= FULL * info["max_fragments"]
    last = plpy.execute(plpy.prepare(
        f"SELECT last_pass_at IS NULL OR last_pass_at + pg_catalog.make_interval(secs => $1)"
        f" <= pg_catalog.now() AS due FROM {state}", ["float8"]), [send_interval_s(plpy)])
    if not (full or last[0]["due"]) or not _lock(plpy, nowait=True):
        return 0    # not due, or a pg_stat_monitor_sdm_send() is doing this: no need to wait
    queued = drain(plpy)
    plpy.execute(f"UPDATE {state} SET last_pass_at = now()")
    return queued


def send_pending(plpy: Plpy) -> int:
    """The worker's send: every coordinator that is due gets what is pending (no lock taken
    when nothing is)."""
    outbox = internal(plpy, "pgsm_sdm_outbox")
    if not plpy.execute(f"SELECT EXISTS (SELECT FROM {outbox}) AS e")[0]["e"] \
            or not _lock(plpy, nowait=True):
        return 0
    return send(plpy, force=False)
