"""Query texts in history are cut to 1536 bytes on a token boundary, marked, valid UTF-8."""

from __future__ import annotations

import pytest

from fixtures import ServerFactory
from history_helpers import HISTORY, MANUAL, export, rows, sleep_past_bucket_end
from pgserver import PgServer
from pgsm.truncate import CUT_MARK, cut_query

MAX = 1536
WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$é")

LONG_LITERAL = "SELECT '" + "é" * 5000 + "' || 'x' AS a, 1 AS b"
SHORT_LITERALS = "SELECT " + ", ".join(["'éé'"] * 1300) + ", 1 AS hist_text_b"
LONG_COMMENT = "SELECT 1, /* " + "é" * 5000 + " */ 2 AS hist_text_c"
ESCAPE_STRING = "SELECT E'it\\'s', '" + "é " * 2500 + "' AS a, 1 AS hist_text_d"


STATEMENTS = (LONG_LITERAL, SHORT_LITERALS, LONG_COMMENT, ESCAPE_STRING)


@pytest.fixture(scope="module")
def stored(make_server: ServerFactory) -> dict[str, str]:
    """The history text of each long statement, keyed by its original text."""
    server: PgServer = make_server(settings=dict(MANUAL))
    with server.connect() as conn:
        for sql in STATEMENTS:
            conn.execute(sql)
        sleep_past_bucket_end()
        # the queryid of each statement, found by the first characters of its live text
        live = rows(conn, "SELECT queryid, query FROM pg_stat_monitor_internal(true)")
        queryids = {sql: [q for q, text in live if text[:12] == sql[:12]] for sql in STATEMENTS}
        export(conn)
        texts = {sql: rows(conn, f"SELECT query, octet_length(convert_to(query, 'UTF8'))"
                                 f" FROM {HISTORY} WHERE queryid = ANY(%s)", ids)
                 for sql, ids in queryids.items()}
    assert all(len(ids) == 1 for ids in queryids.values()), queryids
    assert all(len(found) == 1 for found in texts.values()), texts
    return {sql: found[0][0] for sql, found in texts.items()}


def check_cut(original: str, text: str) -> str:
    """Assert the general properties of a cut text; return the part before the mark."""
    assert len(text.encode("utf-8")) <= MAX
    text.encode("utf-8").decode("utf-8")
    assert text.endswith(CUT_MARK)
    head = text[:-len(CUT_MARK)]
    assert original.startswith(head)
    assert head.count("'") % 2 == 0
    nxt = original[len(head)]
    assert not (head[-1] in WORD and nxt in WORD), (head[-20:], nxt)
    return head


def test_long_literal_is_not_cut_inside(stored: dict[str, str]) -> None:
    """A 10 kB literal of 'é' is dropped whole: the history text is 'SELECT …'."""
    text = stored[LONG_LITERAL]
    check_cut(LONG_LITERAL, text)
    assert text == "SELECT" + CUT_MARK


def test_many_short_literals_are_cut_between_tokens(stored: dict[str, str]) -> None:
    """Many 'éé' literals: cut near 1536 bytes between two tokens, never inside a literal."""
    text = stored[SHORT_LITERALS]
    head = check_cut(SHORT_LITERALS, text)
    assert len(text.encode()) > MAX - 20
    assert head.endswith(("'éé'", "'éé',"))


def test_long_comment_is_not_cut_inside(stored: dict[str, str]) -> None:
    """A 10 kB comment is dropped whole: the history text is 'SELECT 1, …'."""
    text = stored[LONG_COMMENT]
    check_cut(LONG_COMMENT, text)
    assert text == "SELECT 1," + CUT_MARK


def test_escape_string_literal_is_not_cut_inside(stored: dict[str, str]) -> None:
    """E'it\\'s' then a 5 kB literal: the cut keeps E'it\\'s', and drops the long literal."""
    text = stored[ESCAPE_STRING]
    assert len(text.encode("utf-8")) <= MAX
    assert text == "SELECT E'it\\'s'," + CUT_MARK


def test_unit_short_text_is_unchanged() -> None:
    """A text within the limit comes back as it is."""
    sql = "SELECT 'é' AS a -- note"
    assert cut_query(sql, MAX) == sql
    assert cut_query("x" * MAX, MAX) == "x" * MAX


def test_unit_cut_avoids_a_literal() -> None:
    """The limit falls inside a literal: the cut is before it."""
    assert cut_query("SELECT 1, 'abcdefghijklmnopqrstuvwxyz', 2", 30) == "SELECT 1," + CUT_MARK


def test_unit_cut_avoids_doubled_quotes() -> None:
    """'it''s' is one literal: the limit inside it cuts before it."""
    sql = "SELECT 1, 'it''s a long long long text', 2"
    assert cut_query(sql, 25) == "SELECT 1," + CUT_MARK


def test_unit_cut_avoids_an_escape_string() -> None:
    """E'it\\'s' is one literal (a backslash escapes the quote): the cut is before it."""
    sql = "SELECT 1, E'it\\'s a long long long text', 2"
    assert cut_query(sql, 25) == "SELECT 1," + CUT_MARK


def test_unit_cut_avoids_a_comment() -> None:
    """The limit falls inside a block comment: the cut is before it."""
    sql = "SELECT 1, /* a long long long comment */ 2"
    assert cut_query(sql, 30) == "SELECT 1," + CUT_MARK


def test_unit_cut_avoids_a_dollar_quoted_string() -> None:
    """The limit falls inside $tag$...$tag$: the cut is before it."""
    sql = "SELECT 1, $q$ a $ long ' long text $q$, 2"
    assert cut_query(sql, 30) == "SELECT 1," + CUT_MARK


def test_unit_multibyte_text_is_cut_between_characters() -> None:
    """Identifiers of 2-byte 'é': the result fits in the limit and decodes as UTF-8."""
    sql = "SELECT " + ", ".join(["éé"] * 100)
    got = cut_query(sql, 40)
    assert got == "SELECT éé, éé, éé, éé, éé," + CUT_MARK
    assert len(got.encode()) <= 40


def test_unit_already_cut_text_drops_its_partial_last_token() -> None:
    """A head cut by the C side (was_cut): its last token may be partial, so it is dropped."""
    assert cut_query("SELECT abc, defgh", MAX, True) == "SELECT abc," + CUT_MARK
