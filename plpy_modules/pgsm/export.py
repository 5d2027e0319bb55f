"""``pg_stat_monitor_export()``: move finished buckets from shared memory into history.

One transaction, exactly once:
1. take the export lock (a second exporter waits here, then finds nothing left);
2. freeze the finished buckets in shared memory (no statement writes to them any more);
3. insert, in one set-based statement, the top N statements of each bucket by total
   execution time plus one '<other>' row per bucket whose counters are the exact sums of the
   rest, with query texts cut on a token boundary;
4. ask the C side to release those buckets when, and only if, this transaction commits.
"""

from __future__ import annotations

from pgsm import columns, partitions, settings
from pgsm.catalog import internal
from pgsm.plpy import Plpy, qualified


# the export's ranking of a bucket's rows, best first (see columns.RANK)
RANK_ORDER = ", ".join(f"l.{name} DESC" for name in columns.RANK)


def _kept(plpy: Plpy, names: list[str]) -> str:
    """The select list of a kept row: the columns of ranked rows r, the query cut to $3 bytes."""
    q = plpy.quote_ident
    cut = internal(plpy, "pgsm_cut_query")
    return ", ".join(
        f"CASE WHEN r.query_cut OR octet_length(r.query) > $3"
        f" THEN {cut}(r.query, $3, r.query_cut) ELSE r.query END"
        if name == "query" else f"r.{q(name)}"
        for name in names
    )


def _export_sql(plpy: Plpy, schema: str) -> str:
    """The INSERT ... SELECT of one export; $1 below, $2 top N, $3 max text bytes, $4 floor."""
    names = columns.names(plpy)
    folded = ", ".join(columns.folded(names, plpy.quote_ident, "h.resp_calls"))
    return f"""
        WITH live AS (
            SELECT (l.r).*, l.query_cut FROM {internal(plpy, 'pgsm_live_rows')}(true, $1) l
            WHERE (l.r).bucket_start_time >= $4
        ), ranked AS (
            SELECT l.*, row_number() OVER (PARTITION BY l.bucket_start_time
                ORDER BY {RANK_ORDER}) AS rank
            FROM live l
        ), rest_hist AS (
            SELECT x.bucket_start_time, array_agg(x.n ORDER BY x.i)::text[] AS resp_calls
            FROM (SELECT r.bucket_start_time, u.i, sum(u.v::bigint) AS n
                  FROM ranked r CROSS JOIN LATERAL unnest(r.resp_calls) WITH ORDINALITY AS u(v, i)
                  WHERE r.rank > $2 GROUP BY 1, 2) x
            GROUP BY x.bucket_start_time
        )
        INSERT INTO {qualified(plpy, schema, partitions.PARENT)}
            ({", ".join(plpy.quote_ident(n) for n in names)}, exported_at)
        SELECT {_kept(plpy, names)}, now() FROM ranked r WHERE r.rank <= $2
        UNION ALL
        SELECT {folded}, now()
        FROM ranked r JOIN rest_hist h USING (bucket_start_time)
        WHERE r.rank > $2
        GROUP BY r.bucket, r.bucket_start_time, h.resp_calls
    """


def export(plpy: Plpy, schema: str) -> int:
    """Export every finished, unexported bucket; return the number of history rows written."""
    state = internal(plpy, "pgsm_export_state")
    plpy.execute(f"LOCK TABLE {state} IN SHARE ROW EXCLUSIVE MODE")
    below = plpy.execute(f"SELECT {internal(plpy, 'pgsm_freeze_buckets')}() AS b")[0]["b"]
    floor = plpy.execute(f"SELECT exported_below FROM {state}")[0]["exported_below"]
    partitions.maintain(plpy, schema, None)

    insert = plpy.prepare(_export_sql(plpy, schema),
                          ["timestamptz", "bigint", "int", "timestamptz"])
    top_n = settings.get_int(plpy, "pgsm_export_top_n")
    max_len = settings.get_int(plpy, "pgsm_query_max_len")
    written = plpy.execute(insert, [below, top_n, max_len, floor]).nrows()

    release = plpy.prepare(
        f"SELECT {internal(plpy, 'pgsm_release_buckets_on_commit')}($1)", ["timestamptz"])
    plpy.execute(release, [below])
    record = plpy.prepare(
        f"UPDATE {state} SET exported_below = greatest(exported_below, $1),"
        " last_export_at = now(), last_export_rows = $2, exports = exports + 1,"
        " rows_exported = rows_exported + $2",
        ["timestamptz", "bigint"])
    plpy.execute(record, [below, written])
    return int(written)
