"""resp_calls, histogram(), range() and get_histogram_timings() (API.md sections 3 and 4)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fixtures import one, rows, stats

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")



def run_five_times(conn: psycopg.Connection[Any], sql: str) -> dict[str, Any]:
    """Run a statement five times and return its row."""
    for _ in range(5):
        conn.execute(sql)
    [row] = stats(conn, "query = %s", sql)
    assert row["calls"] == 5
    return row


def test_resp_calls_has_22_slots_summing_to_calls(conn: psycopg.Connection[Any]) -> None:
    """At the defaults resp_calls has 22 slots and their sum is calls."""
    row = run_five_times(conn, "SELECT count(*) AS live_hist FROM pg_am")
    assert len(row["resp_calls"]) == 22
    assert sum(int(v) for v in row["resp_calls"]) == 5


def test_histogram_function_returns_22_rows_summing_to_calls(
        conn: psycopg.Connection[Any]) -> None:
    """histogram(bucket, queryid): 22 (range, freq, bar) rows whose freq sums to calls."""
    # a statement of its own shape: histogram() sums the rows of one queryid in the bucket
    row = run_five_times(conn, "SELECT count(*) AS live_hist FROM pg_amop")
    got = rows(conn, "SELECT * FROM histogram(%s::int, %s::bigint)"
               " AS a(range text, freq int, bar text)", row["bucket"], row["queryid"])
    assert len(got) == 22
    assert sum(r[1] for r in got) == 5
    ranges = one(conn, "SELECT range()")
    assert [r[0] for r in got] == ranges
    assert [r[1] for r in got] == [int(v) for v in row["resp_calls"]]
    assert all(r[2] == "" for r in got if r[1] == 0)
    assert all(r[2] != "" for r in got if r[1] > 0)


def test_range_has_22_elements_matching_get_histogram_timings(
        conn: psycopg.Connection[Any]) -> None:
    """range() has 22 distinct elements; get_histogram_timings() lists the same in order."""
    ranges = one(conn, "SELECT range()")
    assert len(ranges) == 22
    assert len(set(ranges)) == 22
    assert one(conn, "SELECT get_histogram_timings()") == "{" + ", ".join(ranges) + "}"


def test_histogram_has_upstream_signature_and_call_form(conn: psycopg.Connection[Any]) -> None:
    """histogram(_bucket int, _quryid int8) returns setof record; upstream's call form works."""
    signature = rows(conn, "SELECT pg_get_function_arguments(p.oid), pg_get_function_result(p.oid)"
                           " FROM pg_proc p WHERE p.proname = 'histogram'")
    assert signature == [("_bucket integer, _quryid bigint", "SETOF record")]
    assert rows(conn, "SELECT * FROM histogram(0, 123) AS a(range text, freq int, bar text)") == []
