"""truncate.cut_query without a server: token boundaries, E-strings, multibyte text."""

from __future__ import annotations

from pgsm.truncate import CUT_MARK, cut_query

E_STRING = "SELECT E'it\\'s a long literal' AS a, 'café' AS b, 2 AS c"
ACCENTS = "SELECT " + ", ".join(["'çàé'"] * 10)


def test_a_text_that_fits_is_kept_whole() -> None:
    """57 bytes in a 60-byte budget: unchanged, no mark."""
    assert cut_query(E_STRING, 60) == E_STRING


def test_an_e_string_is_never_cut_inside() -> None:
    """The escaped quote does not end the literal: cut before or after the whole E-string."""
    assert cut_query(E_STRING, 30) == "SELECT" + CUT_MARK
    assert cut_query(E_STRING, 45) == "SELECT E'it\\'s a long literal' AS a," + CUT_MARK


def test_multibyte_text_is_cut_after_whole_tokens_within_the_byte_limit() -> None:
    """'café' counts 5 bytes: 50 bytes keep it, 55 keep one token more."""
    assert cut_query(E_STRING, 50) == "SELECT E'it\\'s a long literal' AS a, 'café'" + CUT_MARK
    assert cut_query(E_STRING, 55) == (
        "SELECT E'it\\'s a long literal' AS a, 'café' AS b," + CUT_MARK)


def test_cut_texts_are_valid_utf8_within_the_limit() -> None:
    """Every cut of a text of 3-byte-heavy literals is valid UTF-8 of at most the limit."""
    for limit in range(10, 105):
        cut = cut_query(ACCENTS, limit)
        assert len(cut.encode()) <= limit
        assert cut.endswith(CUT_MARK)
        assert cut.encode().decode() == cut
    assert cut_query(ACCENTS, 33) == "SELECT 'çàé', 'çàé'," + CUT_MARK


def test_an_already_cut_text_loses_its_last_token() -> None:
    """was_cut: the last token may be a piece of a longer one, so it goes."""
    assert cut_query("SELECT abc, defghij", 100, was_cut=True) == "SELECT abc," + CUT_MARK
