"""The columns of a statistics row, read from the row type, and how the export folds them.

The row is defined once, as the composite type pgsm_internal.pgsm_row; its columns are
classified by rules, so a new counter needs no change here:
- identity: every column before ``calls`` (NULL in a bucket's '<other>' row, but for the bucket
  and its start, the query '<other>' and the client address 0.0.0.0, "many clients": readers
  such as PMM scan client_ip into a non-nullable string);
- timing groups: ``<stat>_exec_time`` and ``<stat>_plan_time`` with stat total, min, max, mean or
  stddev, folded over the group's count (``calls``, ``plans``);
- ``resp_calls`` (the histogram, summed slot by slot) and ``bucket_done`` (true);
- every other column is a counter whose folded value is its sum.
"""

from __future__ import annotations

import re
from typing import Callable

from pgsm.catalog import INTERNAL
from pgsm.plpy import Plpy

ROW_TYPE = "pgsm_row"
FIRST_COUNTER = "calls"
HISTOGRAM = "resp_calls"
DONE = "bucket_done"
# the count each timing group's mean and stddev are over
TIMING_COUNT = {"exec": "calls", "plan": "plans"}
TIMING = re.compile(r"^(?P<stat>[a-z0-9]+)_(?P<group>exec|plan)_time$")
TIMING_STATS = ("total", "min", "max", "mean", "stddev")
# identity columns the '<other>' row keeps (as the group's) or sets
KEPT_IN_OTHER = {"bucket": "r.bucket", "bucket_start_time": "r.bucket_start_time",
                 "query": "'<other>'", "client_ip": "'0.0.0.0'::pg_catalog.inet"}

# The export keeps the rows of a bucket that rank first by these columns, descending: the exact
# reverse of the order the pg_stat_monitor view gives a bucket's rows of one text id (see the
# view in the install script). Of such rows, the one a reader keeping the last of each (PMM)
# keeps is then the one kept in history first.
RANK = ("total_exec_time", "calls", "queryid", "userid", "dbid", "toplevel", "top_queryid",
        "planid", "client_ip", "application_name", "elevel")

Quote = Callable[[str], str]


def names(plpy: Plpy) -> list[str]:
    """The row type's column names, in order, from the catalog."""
    plan = plpy.prepare(
        "SELECT a.attname::text AS name FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_type t ON t.typrelid = a.attrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = $1 AND t.typname = $2 AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum", ["text", "text"])
    return [str(row["name"]) for row in plpy.execute(plan, [INTERNAL, ROW_TYPE])]


def kind(name: str, position: int, first_counter: int) -> str:
    """How a column folds: identity, timing, histogram, done or sum."""
    if position < first_counter:
        return "identity"
    if name == HISTOGRAM:
        return "histogram"
    if name == DONE:
        return "done"
    match = TIMING.match(name)
    if match:
        if match["stat"] not in TIMING_STATS:
            raise ValueError(f"no rule folds timing column {name}")
        return "timing"
    return "sum"


def kinds(columns: list[str]) -> dict[str, str]:
    """Each column's kind (see kind()), in order."""
    first_counter = columns.index(FIRST_COUNTER)
    return {name: kind(name, i, first_counter) for i, name in enumerate(columns)}


def timing(name: str, q: Quote) -> str:
    """The folded value of one timing column over rows r of one bucket.

    The folded stddev is the population one of all samples: from each row's count n,
    mean m and stddev s, sum(n * (s^2 + m^2)) / N - M^2.
    """
    match = TIMING.match(name)
    assert match is not None
    stat, group = match["stat"], match["group"]

    def col(s: str) -> str:
        return f"r.{q(f'{s}_{group}_time')}"

    count = f"r.{q(TIMING_COUNT[group])}"
    n, total = f"sum({count})", f"sum({col('total')})"
    mean = f"({total} / nullif({n}, 0))"
    squares = f"sum({count} * ({col('stddev')} ^ 2 + {col('mean')} ^ 2))"
    return {
        "total": f"coalesce({total}, 0)",
        "min": f"coalesce(min({col('min')}) FILTER (WHERE {count} > 0), 0)",
        "max": f"coalesce(max({col('max')}) FILTER (WHERE {count} > 0), 0)",
        "mean": f"coalesce({mean}, 0)",
        "stddev": f"coalesce(sqrt(greatest({squares} / nullif({n}, 0) - {mean} ^ 2, 0)), 0)",
    }[stat]


def folded(columns: list[str], q: Quote, histogram: str) -> list[str]:
    """The expression of each column of a bucket's '<other>' row (rows r grouped by bucket);
    ``histogram`` is the expression of the summed histogram."""
    exprs = []
    for name, how in kinds(columns).items():
        if how == "identity":
            exprs.append(KEPT_IN_OTHER.get(name, "NULL"))
        elif how == "histogram":
            exprs.append(histogram)
        elif how == "done":
            exprs.append("true")
        elif how == "timing":
            exprs.append(timing(name, q))
        else:
            exprs.append(f"sum(r.{q(name)})")
    return exprs
