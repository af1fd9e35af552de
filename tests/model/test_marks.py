"""Marks inside a word, read through (``model/marks.py``): what it reads, what it leaves as
written, and that a hostile post of marks costs its length."""

from __future__ import annotations

import pytest
from hostile import within_seconds
from hypothesis import given, settings
from hypothesis import strategies as st

from modfleet.model.marks import read_through


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("k*ill* yourse*lf*", "kill yourself"),
        ("f**u**cking w~~orth~~less", "fucking worthless"),
        ("kill*a*yourself", "killayourself"),  # glued: why the text as written is scored too
        ("\u043a*\u0456ll*", "\u043a\u0456ll"),  # look-alike letters are letters too
        ("f***ing sh*t", None),  # censoring: no closing pair
        ("**bold** and *this*", None),  # whole words: nothing hidden
        ("2*3*4 and a * b", None),
        ("snake_case_name ~~", None),
        ("k\U0001f52aill yours\u2764\ufe0felf", "kill yourself"),  # emoji between letters
        ("id\U0001f921\U0001f921iot", "idiot"),
        ("I \u2764\ufe0f you \U0001f52a", None),  # between words: punctuation
        ("\u2764love love\u2764 2\U0001f525x", None),
    ],
)
def test_marks_inside_words_are_read_through_and_nothing_else(text: str, read: str | None) -> None:
    assert read_through(text) == read


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from([*"ab *~_\n1\u2764\ufe0f", "\U0001f52a"]), max_size=80))
def test_reading_through_only_ever_removes_marks(text: str) -> None:
    read = read_through(text)
    if read is None:
        return
    assert read != text
    marks = "*~\u2764\ufe0f\U0001f52a"
    assert [c for c in read if c not in marks] == [c for c in text if c not in marks]


@pytest.mark.parametrize(
    "unit", ["*a", "**aa*", "a~~", "~~a~", "a*b*", "a\U0001f52a", "\u2764\ufe0f\u200d", "a\u2764 "]
)
def test_a_post_of_marks_costs_its_length(unit: str) -> None:
    text = unit * (200_000 // len(unit))
    with within_seconds(5):
        read_through(text)
