"""The part of PL/Python's ``plpy`` module this package uses, as a Protocol."""

from __future__ import annotations

from typing import Any, NoReturn, Protocol, Sequence


class Plan(Protocol):
    """A prepared statement."""


class Plpy(Protocol):
    """What the package calls on ``plpy``."""

    spiexceptions: Any
    Error: Any
    SPIError: Any

    def subtransaction(self) -> Any: ...

    def prepare(self, query: str, argtypes: Sequence[str] = ...) -> Plan: ...

    def execute(self, plan: Any, args: Sequence[Any] = ..., limit: int = ...) -> Any: ...

    def quote_ident(self, name: str) -> str: ...

    def quote_literal(self, value: str) -> str: ...

    def notice(self, msg: str, **fields: str) -> None: ...

    def warning(self, msg: str) -> None: ...

    def log(self, msg: str) -> None: ...

    def error(self, msg: str, **fields: str) -> NoReturn: ...


def qualified(plpy: Plpy, schema: str, name: str) -> str:
    """Return ``schema.name`` quoted, for the extension's own objects."""
    return f"{plpy.quote_ident(schema)}.{plpy.quote_ident(name)}"
