"""A text's second reading (``model/readings.py``): what it reads, what it leaves as written,
and that a hostile post costs its length."""

from __future__ import annotations

import pytest
from hostile import within_seconds
from hypothesis import given, settings
from hypothesis import strategies as st

from modfleet.model.readings import (
    _AMBIGUOUS_WORD,
    _INSIDE,
    _INSIDE_ASCII,
    _joined,
    _other_letters,
    _translated,
    second_reading,
)


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
        ("ki11 yourse1f", "kill yourself"),  # 1 for l: the word view reads i
        ("k|ll y0urself", "kill y0urself"),  # | for i: the word view reads l
        ("b1tch", "bltch"),  # read as i already: the first reading keeps that
        # Punctuation between two letters of a word: read through.
        ("k,ill yours,elf", "kill yourself"),
        ("k'ill your\u2019self", "kill yourself"),
        ("k.ill k;ill k:ill k-ill", "kill kill kill kill"),
        ("you idio't, a bigo\u2019t", "you idiot, a bigot"),  # 't is a contraction after n only
        ("e.g. i.e. U.S.A. f.u.c.k off", None),  # single letters: the word view joins 3+
        # Contractions, sentences and numbers: not read again.
        ("don't, it's, we'll, they're, I'm, you've, he'd, can\u2019t", None),
        ("DON'T, won't, ain't, mustn't, shan\u2019t, 'tis, 'twas", None),
        ("Hello, world. Fine; ok: 3,000 km in 2.5 days - well done", None),
        ("'quoted' and \u2018this\u2019", None),
        # A hashtag's words run together with a capital each.
        ("#GoDieInAFire", "#Go Die In A Fire"),
        ("#KillYourself KillYourSelf", "#Kill Yourself KillYourSelf"),
        ("iPhone YouTube JavaScript McDonald HTMLParser #HTML #iPad", None),
        # Addresses and handles hold no reader's words: not read again.
        ("@GoDieInAFire t.co/AbCdEfGh a.b-c@d.org", None),
        # Numbers, ordinals, tags and names: not read again.
        ("call 911 at 10:15, 1 by 1, the 1st and 21st", None),
        ("user123 covid19 #z1 a11 ||||", None),
    ],
)
def test_what_a_reader_sees_is_read_again_and_nothing_else(text: str, read: str | None) -> None:
    assert second_reading(text) == read


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from([*"abB# *~_\n1|\u2764\ufe0f,.'-", "\U0001f52a"]), max_size=80))
def test_a_second_reading_only_drops_marks_splits_words_and_swaps_ambiguous_letters(
    text: str,
) -> None:
    read = second_reading(text)
    if read is None:
        return
    assert read != text
    marks = "*~\u2764\ufe0f\U0001f52a,.'- "  # and a space between words run together
    kept = [c.translate(str.maketrans("li", "1|")) for c in read if c not in marks]
    assert kept == [c for c in text if c not in marks]


@pytest.mark.parametrize(
    "unit",
    [
        "*a",
        "**aa*",
        "a~~",
        "~~a~",
        "a*b*",
        "a\U0001f52a",
        "\u2764\ufe0f\u200d",
        "a\u2764 ",
        "|",
        "1",
        "1a|",
        "a'",
        "a.",
        "a,-.'",
        "ab's ",
        "n't",  # the two contraction lookbehinds, 't after n and after another letter
        "a\u2019t ",
        "aB",
        "#Ab",
        "#AaA",
        "#Aa",
        "aBc ",
        "a/",
        "a.b @",
    ],
)
def test_a_hostile_post_costs_its_length(unit: str) -> None:
    text = unit * (200_000 // len(unit))
    with within_seconds(5):
        second_reading(text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from([*"abstndrh1|2_ #.\u00e9\n"]), max_size=60))
def test_the_loop_reads_ambiguous_letters_as_the_pattern_defines(text: str) -> None:
    # A post with a few 1s and |s is read by a loop from each of them outwards, one with many
    # by the pattern: the same words, to the character.
    assert _other_letters(text) == _AMBIGUOUS_WORD.sub(_translated, text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from([*"abstdrmlvAB,;:.'-_1 #\n"]), max_size=60))
def test_an_ascii_text_is_read_through_as_the_unicode_pattern_reads_it(text: str) -> None:
    # An ASCII text is read with [A-Za-z] for a letter, twice as fast: the same marks joined.
    assert _INSIDE_ASCII.sub(_joined, text) == _INSIDE.sub(_joined, text)
