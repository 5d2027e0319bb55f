"""Partition names and days without a server."""

from __future__ import annotations

import datetime as dt

import pytest

from pgsm.errors import PgsmError
from pgsm.partitions import day_of, partition_name, plan_days


def test_a_day_names_its_partition() -> None:
    """2026-11-21 is pg_stat_monitor_history_p20261121; year 5 keeps four digits."""
    assert partition_name(dt.date(2026, 11, 21)) == "pg_stat_monitor_history_p20261121"
    assert partition_name(dt.date(5, 1, 2)) == "pg_stat_monitor_history_p00050102"


@pytest.mark.parametrize("day", [dt.date(2026, 11, 21), dt.date(2028, 2, 29), dt.date(5, 1, 2)])
def test_a_partition_name_gives_back_its_day(day: dt.date) -> None:
    """day_of(partition_name(d)) == d."""
    assert day_of(partition_name(day)) == day


@pytest.mark.parametrize("name", [
    "pg_stat_monitor_history_default", "pg_stat_monitor_history_p20261332",
    "pg_stat_monitor_history_p2026112", "pg_stat_monitor_history_p2026112a",
    "pg_stat_monitor_history_p+2026112", "other_p20261121",
])
def test_other_tables_are_not_day_partitions(name: str) -> None:
    """The default partition, bad dates and other names have no day."""
    assert day_of(name) is None


def test_days_ahead_and_the_first_day_kept() -> None:
    """Today 2028-02-27, 2 ahead, 30 kept: 02-27..02-29, first kept 2028-01-28."""
    days, first_kept = plan_days(dt.date(2028, 2, 27), 2, 30)
    assert days == [dt.date(2028, 2, 27), dt.date(2028, 2, 28), dt.date(2028, 2, 29)]
    assert first_kept == dt.date(2028, 1, 28)


def test_days_out_of_range_are_a_22008_error() -> None:
    """Retention reaching before year 1: PgsmError with SQLSTATE 22008."""
    with pytest.raises(PgsmError) as info:
        plan_days(dt.date(1, 1, 5), 2, 30)
    assert info.value.sqlstate == "22008"
