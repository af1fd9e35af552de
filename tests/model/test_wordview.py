"""The word view: what its two patterns define, whichever way a text's length has it made."""

from __future__ import annotations

import re

import pytest
from hostile import within_seconds
from hypothesis import given, settings
from hypothesis import strategies as st

from modfleet.model.tokens import IN_ARRAYS
from modfleet.model.wordview import _LEET_WORD, LEET_TABLE, words

# The patterns that define the view, written out here as the reference: a word (a run between
# whitespace) holding a l33t character and a letter is read as letters; three or more single
# word characters one separator apart are joined.
_LEET_WORD_PATTERN = re.compile(r"[^\s]*[013457@$!|][^\s]*")
_SPACED_PATTERN = re.compile(r"(?<!\w)(?:\w[ .*_-]){2,}\w(?!\w)")


def _defined(text: str) -> str:
    def leet(match: re.Match[str]) -> str:
        word = match.group(0)
        return word.translate(LEET_TABLE) if re.search("[a-z]", word) else word

    # The pattern in use, tried at word starts only: the same words as the plain one (tested
    # below), which is quadratic in a long word's length.
    read = _LEET_WORD.sub(leet, text)
    return _SPACED_PATTERN.sub(lambda m: re.sub(r"[ .*_-]", "", m.group(0)), read)


# Single letters and every separator (the underscore is a word character too), each l33t
# character, whitespace of other kinds (no-break, ideographic, a file separator), word and
# non-word characters outside the basic plane, a lone surrogate, newlines between texts.
_CHARS = st.sampled_from(
    [
        *"abz9_ .*-\n\t01345@$!|2(+",
        *("\u20ac", "\u00a3", "\u00e9", "\u00a0", "\u3000", "\x1c", "\u2028"),
        *("\U0001d41a", "\U0001f600", "\ud800", "\u0661"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.text(_CHARS, min_size=IN_ARRAYS, max_size=900))
def test_a_long_text_reads_as_the_patterns_define(text: str) -> None:
    # Long texts (a batch's joined) are read with arrays: the same string, to the character.
    assert words(text) == _defined(text)


@settings(max_examples=300, deadline=None)
@given(st.text(_CHARS, max_size=IN_ARRAYS - 1))
def test_a_short_text_reads_as_the_patterns_define(text: str) -> None:
    assert words(text) == _defined(text)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("call the u.s.a. office", "call the usa. office"),
        ("you i d i o t", "you idiot"),
        ("a b cd", "a b cd"),  # two single letters, then a word: not spaced-out letters
        ("a b c de", "abc de"),
        ("a_b_c", "abc"),
        ("$5 for 1d10t$", "$5 for idiots"),
        ("since 2024, 3 pm", "since 2024, 3 pm"),
        ("\U0001d41a b c", "\U0001d41abc"),
    ],
)
def test_examples_read_the_same_alone_and_in_a_long_text(text: str, read: str) -> None:
    assert words(text) == read
    padding = "plain words between the examples, " * (IN_ARRAYS // 30)
    assert words(f"{padding}\n{text}\n{padding}") == f"{padding}\n{read}\n{padding}"


@settings(max_examples=300, deadline=None)
@given(st.text(_CHARS, max_size=60))
def test_leet_words_are_the_words_the_reference_pattern_finds(text: str) -> None:
    # The pattern in use is tried at word starts only (see wordview): it finds the same words.
    assert [m.span() for m in _LEET_WORD.finditer(text)] == [
        m.span() for m in _LEET_WORD_PATTERN.finditer(text)
    ]


@pytest.mark.parametrize(
    "unit",
    ["a ", "a b cd ", "a.", "1a ", "a_"],
    ids=["one-chain", "chains-that-fail", "dotted", "leet-words", "underscored"],
)
def test_a_post_of_candidate_shapes_costs_its_length(unit: str) -> None:
    # 200,000 characters (ten times the default pack's limit) where nearly every position has
    # the shape a spaced-out match starts with, or every word is l33t: linear work.
    text = unit * (200_000 // len(unit))
    with within_seconds(5):
        read = words(text)
    assert read == _defined(text)
