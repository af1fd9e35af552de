"""Markdown emphasis inside a word, read through (``model/emphasis.py``): what it reads, what it
leaves as written, and that a hostile post of marks costs its length."""

from __future__ import annotations

import pytest
from hostile import within_seconds
from hypothesis import given, settings
from hypothesis import strategies as st

from modfleet.model.emphasis import read_through


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
    ],
)
def test_in_word_emphasis_is_read_through_and_nothing_else(text: str, read: str | None) -> None:
    assert read_through(text) == read


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from([*"ab *~_\n1"]), max_size=80))
def test_reading_through_only_ever_removes_marks(text: str) -> None:
    read = read_through(text)
    if read is None:
        return
    assert read != text
    assert [c for c in read if c not in "*~"] == [c for c in text if c not in "*~"]


@pytest.mark.parametrize("unit", ["*a", "**aa*", "a~~", "~~a~", "a*b*"])
def test_a_post_of_marks_costs_its_length(unit: str) -> None:
    text = unit * (200_000 // len(unit))
    with within_seconds(5):
        read_through(text)
