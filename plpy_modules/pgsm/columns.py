"""The 65 columns of the pg_stat_monitor view, in order, and how the export folds them."""

from __future__ import annotations

IDENTITY = [
    "bucket", "bucket_start_time", "userid", "username", "dbid", "datname", "client_ip",
    "pgsm_query_id", "queryid", "toplevel", "top_queryid", "query", "comments", "planid",
    "query_plan", "top_query", "application_name", "relations", "cmd_type", "cmd_type_text",
    "elevel", "sqlcode", "message",
]

# counters whose folded value is a plain sum
SUMS = [
    "rows", "shared_blks_hit", "shared_blks_read", "shared_blks_dirtied", "shared_blks_written",
    "local_blks_hit", "local_blks_read", "local_blks_dirtied", "local_blks_written",
    "temp_blks_read", "temp_blks_written", "blk_read_time", "blk_write_time",
    "temp_blk_read_time", "temp_blk_write_time", "cpu_user_time", "cpu_sys_time",
    "wal_records", "wal_fpi", "wal_bytes", "jit_functions", "jit_generation_time",
    "jit_inlining_count", "jit_inlining_time", "jit_optimization_count",
    "jit_optimization_time", "jit_emission_count", "jit_emission_time",
]

ALL = [
    *IDENTITY,
    "calls", "total_exec_time", "min_exec_time", "max_exec_time", "mean_exec_time",
    "stddev_exec_time", "rows", "shared_blks_hit", "shared_blks_read", "shared_blks_dirtied",
    "shared_blks_written", "local_blks_hit", "local_blks_read", "local_blks_dirtied",
    "local_blks_written", "temp_blks_read", "temp_blks_written", "blk_read_time",
    "blk_write_time", "temp_blk_read_time", "temp_blk_write_time", "resp_calls",
    "cpu_user_time", "cpu_sys_time", "wal_records", "wal_fpi", "wal_bytes", "bucket_done",
    "plans", "total_plan_time", "min_plan_time", "max_plan_time", "mean_plan_time",
    "stddev_plan_time", "jit_functions", "jit_generation_time", "jit_inlining_count",
    "jit_inlining_time", "jit_optimization_count", "jit_optimization_time",
    "jit_emission_count", "jit_emission_time",
]

assert len(ALL) == 65


def timing(prefix: str, count: str) -> dict[str, str]:
    """Fold expressions for one timing group (exec or plan) over rows r of one bucket.

    The folded stddev is the population one of all samples: from each row's count n,
    mean m and stddev s, sum(n * (s^2 + m^2)) / N - M^2.
    """
    n, total = f"sum(r.{count})", f"sum(r.total_{prefix}_time)"
    mean = f"({total} / nullif({n}, 0))"
    squares = f"sum(r.{count} * (r.stddev_{prefix}_time ^ 2 + r.mean_{prefix}_time ^ 2))"
    return {
        f"total_{prefix}_time": f"coalesce({total}, 0)",
        f"min_{prefix}_time": f"coalesce(min(r.min_{prefix}_time) FILTER (WHERE r.{count} > 0), 0)",
        f"max_{prefix}_time": f"coalesce(max(r.max_{prefix}_time) FILTER (WHERE r.{count} > 0), 0)",
        f"mean_{prefix}_time": f"coalesce({mean}, 0)",
        f"stddev_{prefix}_time":
            f"coalesce(sqrt(greatest({squares} / nullif({n}, 0) - {mean} ^ 2, 0)), 0)",
    }


def folded() -> dict[str, str]:
    """The expression of each column of a bucket's '<other>' row (grouped by bucket)."""
    expr = {name: "NULL" for name in IDENTITY}
    expr.update({
        "bucket": "r.bucket", "bucket_start_time": "r.bucket_start_time",
        "query": "'<other>'", "calls": "sum(r.calls)", "plans": "sum(r.plans)",
        "bucket_done": "true", "resp_calls": "NULL",
    })
    expr.update({name: f"sum(r.{name})" for name in SUMS})
    expr.update(timing("exec", "calls"))
    expr.update(timing("plan", "plans"))
    return expr
