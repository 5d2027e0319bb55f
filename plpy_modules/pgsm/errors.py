"""Errors for the user, each with its SQLSTATE; the entry points raise them through plpy."""

from __future__ import annotations

NULL_VALUE_NOT_ALLOWED = "22004"
DATETIME_FIELD_OVERFLOW = "22008"
INVALID_PARAMETER_VALUE = "22023"
OBJECT_NOT_IN_PREREQUISITE_STATE = "55000"
UNDEFINED_OBJECT = "42704"
INTERNAL_ERROR = "XX000"


class PgsmError(Exception):
    """A SQL error in PostgreSQL's message style: message, SQLSTATE, optional detail and hint."""

    def __init__(self, message: str, sqlstate: str, detail: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint

    def fields(self) -> dict[str, str]:
        """The keyword arguments of plpy.error() (detail and hint only when given)."""
        given = {"sqlstate": self.sqlstate, "detail": self.detail, "hint": self.hint}
        return {key: value for key, value in given.items() if value is not None}
