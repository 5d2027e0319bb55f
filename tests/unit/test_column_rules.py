"""The export's column rules, on the names of API.md section 2, with a fake plpy."""

from __future__ import annotations

from typing import Any, Sequence

import pytest

from api_md import api_columns, api_names
from fakeplpy import FakePlpy
from pgsm import columns

TIMING = [f"{stat}_{group}_time" for group in ("exec", "plan")
          for stat in ("total", "min", "max", "mean", "stddev")]


def quote(name: str) -> str:
    """Quote an identifier as the fake plpy does."""
    return FakePlpy().quote_ident(name)


def test_api_md_lists_65_numbered_columns() -> None:
    """The parsed table of API.md section 2 has columns 1 to 65, names unique."""
    assert len(api_columns()) == 65
    assert len(set(api_names())) == 65


def test_names_come_from_the_row_type_in_the_catalog() -> None:
    """names() asks pg_attribute for pgsm_internal.pgsm_row and keeps the order given."""
    asked: list[Sequence[Any]] = []

    def answer(query: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        asked.append(args)
        return [{"name": name} for name in api_names()]

    assert columns.names(FakePlpy(answer)) == api_names()
    assert asked == [["pgsm_internal", "pgsm_row"]]


def test_the_65_columns_fall_into_their_kinds() -> None:
    """23 identity columns before calls, 10 timing, the histogram, bucket_done, 30 sums."""
    kinds = columns.kinds(api_names())
    by_kind = {kind: [n for n, k in kinds.items() if k == kind] for kind in set(kinds.values())}
    assert by_kind["identity"] == api_names()[:23]
    assert by_kind["identity"][-1] == "message"
    assert sorted(by_kind["timing"]) == sorted(TIMING)
    assert by_kind["histogram"] == ["resp_calls"]
    assert by_kind["done"] == ["bucket_done"]
    assert len(by_kind["sum"]) == 30
    assert {"calls", "plans", "rows", "wal_bytes", "blk_read_time", "cpu_user_time",
            "jit_emission_time"} <= set(by_kind["sum"])


def test_a_new_counter_is_summed_without_a_change_here() -> None:
    """A column added after calls (e.g. spill_bytes) folds as its sum."""
    names = [*api_names(), "spill_bytes"]
    assert columns.kinds(names)["spill_bytes"] == "sum"
    assert columns.folded(names, quote, "h")[-1] == 'sum(r."spill_bytes")'


def test_an_unknown_timing_statistic_is_refused() -> None:
    """p99_exec_time has no folding rule: ValueError rather than a wrong sum."""
    with pytest.raises(ValueError, match="p99_exec_time"):
        columns.kinds([*api_names(), "p99_exec_time"])


def test_the_other_row_keeps_the_bucket_and_sums_the_rest() -> None:
    """'<other>': bucket kept, query '<other>', other identity NULL, counters folded."""
    names = api_names()
    folded = dict(zip(names, columns.folded(names, quote, "h.resp_calls")))
    assert folded["bucket"] == "r.bucket"
    assert folded["bucket_start_time"] == "r.bucket_start_time"
    assert folded["query"] == "'<other>'"
    assert [folded[n] for n in ("userid", "queryid", "message")] == ["NULL"] * 3
    assert folded["calls"] == 'sum(r."calls")'
    assert folded["resp_calls"] == "h.resp_calls"
    assert folded["bucket_done"] == "true"
    assert folded["total_plan_time"] == 'coalesce(sum(r."total_plan_time"), 0)'
    assert folded["min_exec_time"] == (
        'coalesce(min(r."min_exec_time") FILTER (WHERE r."calls" > 0), 0)')
    assert folded["mean_plan_time"] == (
        'coalesce((sum(r."total_plan_time") / nullif(sum(r."plans"), 0)), 0)')
