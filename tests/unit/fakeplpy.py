"""A tiny stand-in for PL/Python's plpy: canned query results, errors as exceptions."""

from __future__ import annotations

from typing import Any, Callable, NoReturn, Sequence


class FakeError(Exception):
    """plpy.Error: what plpy.error() raises; fields holds its sqlstate, detail and hint."""

    def __init__(self, msg: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.fields = fields or {}


class FakeSPIError(FakeError):
    """plpy.SPIError: a SQL error raised by a query."""


class FakePlan:
    """A prepared statement: its text and argument types."""

    def __init__(self, query: str, argtypes: Sequence[str]) -> None:
        self.query = query
        self.argtypes = list(argtypes)


Answer = Callable[[str, Sequence[Any]], list[dict[str, Any]]]


class FakePlpy:
    """Answers each query through a function of (query text, arguments)."""

    Error = FakeError
    SPIError = FakeSPIError
    spiexceptions: Any = None

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or (lambda query, args: [])
        self.queries: list[str] = []

    def prepare(self, query: str, argtypes: Sequence[str] = ()) -> FakePlan:
        return FakePlan(query, argtypes)

    def execute(self, plan: Any, args: Sequence[Any] = (), limit: int = 0) -> Any:
        query = plan.query if isinstance(plan, FakePlan) else str(plan)
        self.queries.append(query)
        return self.answer(query, args)

    def subtransaction(self) -> Any:
        raise NotImplementedError

    def quote_ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def quote_literal(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    def notice(self, msg: str, **fields: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def log(self, msg: str) -> None:
        pass

    def error(self, msg: str, **fields: str) -> NoReturn:
        raise FakeError(msg, fields)
