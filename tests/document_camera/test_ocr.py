"""The readability measure itself: edit distance and character error rate."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from document_camera.ocr import character_error_rate, edit_distance


def _reference(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_known_distances() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("äö", "") == 2
    assert edit_distance("hakemus", "hakemus") == 0


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcäö 12", max_size=30), st.text(alphabet="abcäö 12", max_size=30))
def test_matches_the_textbook_recurrence(a: str, b: str) -> None:
    assert edit_distance(a, b) == _reference(a, b)


def test_cer_ignores_line_breaks_and_spacing() -> None:
    assert character_error_rate("one two\nthree", "one  two three ") == 0.0
    assert character_error_rate("abcd", "abed") == 0.25
    assert character_error_rate("", "") == 0.0
    assert character_error_rate("", "x") == 1.0
