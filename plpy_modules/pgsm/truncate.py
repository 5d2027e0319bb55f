"""Cut query texts for history without breaking a character, a literal or a comment.

sqlglot's PostgreSQL tokenizer finds the token boundaries; the text is cut after the last
whole token that fits, so the result never ends inside a string literal, a quoted identifier
or a comment, and is always valid UTF-8 because it is cut between characters.
"""

from __future__ import annotations

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

CUT_MARK = " \u2026"  # " …": the mark of a cut text, counted in the limit
ESCAPE_STRING_STARTS = ("E'", "e'")


class _Tokenizer(Postgres.Tokenizer):
    """PostgreSQL's tokenizer, plus backslash escapes in E'...' strings (sqlglot reads none)."""

    def _scan_string(self, start: str) -> bool:
        if start not in ESCAPE_STRING_STARTS:
            return bool(super()._scan_string(start))
        self._advance(len(start))
        text = self._extract_string("'", escapes={"'", "\\"})
        self._add(TokenType.BYTE_STRING, text)
        return True


def _token_ends(text: str) -> list[int]:
    """Character offsets just past each whole token (a trailing unfinished one is absent)."""
    tokenizer = _Tokenizer()
    try:
        tokenizer.tokenize(text)
    except TokenError:
        pass  # the tokens before the one it could not finish are kept
    return [token.end + 1 for token in tokenizer.tokens]


def cut_query(text: str, max_bytes: int, was_cut: bool = False) -> str:
    """Return text if it fits in max_bytes and is whole; else a token-boundary cut plus CUT_MARK.

    was_cut says the text is already the head of a longer one (its last token may be partial).
    """
    if not was_cut and len(text.encode()) <= max_bytes:
        return text
    budget = max_bytes - len(CUT_MARK.encode())
    ends = _token_ends(text)
    if was_cut and ends and ends[-1] >= len(text.rstrip()):
        ends.pop()  # the last token reaches the old cut: it may be a piece of a longer one
    keep = 0
    for end in ends:
        if len(text[:end].encode()) > budget:
            break
        keep = end
    return text[:keep].rstrip() + CUT_MARK
