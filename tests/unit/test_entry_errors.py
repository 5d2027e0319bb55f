"""The PL/Python entry points raise every error through plpy with a SQLSTATE."""

from __future__ import annotations

from typing import Any, Sequence

import pytest

from fakeplpy import FakeError, FakePlpy, FakeSPIError
from pgsm import entry
from pgsm.errors import PgsmError


def fail(error: Exception) -> Any:
    """A piece of work that raises error."""
    def work() -> Any:
        raise error
    return work


def test_a_pgsm_error_becomes_plpy_error_with_its_fields() -> None:
    """PgsmError(message, 22023, hint) is raised as plpy.error with sqlstate and hint."""
    with pytest.raises(FakeError) as info:
        entry.run(FakePlpy(), fail(PgsmError("bad n", "22023", hint="Use 1.")))
    assert str(info.value) == "bad n"
    assert info.value.fields == {"sqlstate": "22023", "hint": "Use 1."}


def test_a_python_exception_becomes_an_internal_error_without_traceback() -> None:
    """A KeyError is XX000 'pg_stat_monitor internal error', its type in the detail."""
    with pytest.raises(FakeError) as info:
        entry.run(FakePlpy(), fail(KeyError("x")))
    assert str(info.value) == "pg_stat_monitor internal error"
    assert info.value.fields == {"sqlstate": "XX000", "detail": "KeyError: 'x'"}


def test_a_sql_error_keeps_its_own_sqlstate() -> None:
    """A plpy.SPIError passes through unchanged."""
    error = FakeSPIError("lock timeout", {"sqlstate": "55P03"})
    with pytest.raises(FakeSPIError) as info:
        entry.run(FakePlpy(), fail(error))
    assert info.value is error


@pytest.mark.parametrize(("now", "force", "message"), [
    (None, False, "now must not be null"),
    ("2026-01-01 00:00:00+00", None, "force must not be null"),
])
def test_maintain_rejects_null_arguments_with_22004(
        now: str | None, force: bool | None, message: str) -> None:
    """NULL now or force: 22004 before any query runs."""
    plpy = FakePlpy()
    with pytest.raises(FakeError) as info:
        entry.maintain(plpy, now, force)
    assert (str(info.value), info.value.fields) == (message, {"sqlstate": "22004"})
    assert plpy.queries == []


def clock(finite: bool, ahead: bool) -> FakePlpy:
    """A plpy whose check of now answers finite and ahead."""
    def answer(query: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"finite": finite, "ahead": ahead}]
    return FakePlpy(answer)


def test_maintain_refuses_a_now_ahead_of_the_clock_unless_forced() -> None:
    """Ahead and not forced: 22023 with a hint naming force => true."""
    with pytest.raises(PgsmError) as info:
        entry.check_maintain_args(clock(True, True), "2030-01-01 00:00:00+00", False)
    assert info.value.sqlstate == "22023"
    assert "force => true" in (info.value.hint or "")
    entry.check_maintain_args(clock(True, True), "2030-01-01 00:00:00+00", True)


def test_maintain_refuses_an_infinite_now_even_forced() -> None:
    """'infinity': 22008, forced or not."""
    with pytest.raises(PgsmError) as info:
        entry.check_maintain_args(clock(False, True), "infinity", True)
    assert (info.value.sqlstate, info.value.detail, info.value.hint) == ("22008", None, None)
