"""`escaped`: text from messages, the database or a remote, made safe to show in logs and metadata."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpsync_dagster.dataset_ids import escaped


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("SYNC-001-12345", "SYNC-001-12345"),
        ("ünïcødé/файл 名前.c4gh", "ünïcødé/файл 名前.c4gh"),
        ("a\\x1b stays", "a\\x1b stays"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("line\nbreak\r\ttab\x00nul\x7fdel", "line\\nbreak\\r\\ttab\\x00nul\\x7fdel"),
        ("csi\x9bc1", "csi\\x9bc1"),
        ("evil\u202egpj.exe", "evil\\u202egpj.exe"),
        ("isolates\u2066\u2067\u2068\u2069", "isolates\\u2066\\u2067\\u2068\\u2069"),
        ("zero\u200bwidth\ufeffbom", "zero\\u200bwidth\\ufeffbom"),
        ("separators\u2028\u2029\u00a0", "separators\\u2028\\u2029\\xa0"),
        ("private\U000f0000use", "private\\U000f0000use"),
        ("lone\udc80surrogate", "lone\\udc80surrogate"),
    ],
)
def test_characters_that_are_not_printable_are_escaped(text: str, shown: str) -> None:
    assert escaped(text) == shown


@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_the_result_is_printable_and_escaping_twice_changes_nothing(text: str) -> None:
    once = escaped(text)

    assert once.isprintable()
    assert escaped(once) == once
    assert escaped(text) == text or not text.isprintable()
