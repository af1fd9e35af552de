import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modfleet.normalise import normalise
from modfleet.normalise.text import _folded


def test_invisible_characters_and_spacing_do_not_change_the_hash() -> None:
    plain = normalise("buy cheap pills now", 1000)
    dodged = normalise("  buy\u200b cheap\n\tpills \u2060now ", 1000)
    assert dodged.text == "buy cheap pills now"
    assert dodged.content_hash == plain.content_hash


def test_compatibility_forms_fold_to_the_same_text() -> None:
    fullwidth = "\uff46\uff52\uff45\uff45\u3000\uff4d\uff4f\uff4e\uff45\uff59"
    assert normalise(fullwidth, 1000).text == "free money"


def test_different_texts_hash_differently() -> None:
    assert normalise("hello there", 100).content_hash != normalise("hello where", 100).content_hash


def test_long_text_is_cut_and_says_so() -> None:
    result = normalise("a" * 50, 10)
    assert result.text == "a" * 10
    assert result.truncated
    assert not normalise("short", 10).truncated


def test_huge_body_is_cut_without_folding_all_of_it() -> None:
    result = normalise("x" * 10_000_000, 100)
    assert len(result.text) == 100
    assert result.truncated


_ASCII_AND_FRIENDS = st.text(
    alphabet=st.sampled_from([*"ab Z9!~", " ", "\t", "\n", "\x1f", "\x7f", "\u00e9", "\u200b"]),
    max_size=40,
)


# max_chars of 11 and up: the appended character must not trigger the raw cut (4x the limit).
@given(_ASCII_AND_FRIENDS, st.integers(min_value=11, max_value=50))
def test_the_printable_ascii_shortcut_gives_the_general_paths_text_and_hash(
    text: str, max_chars: int
) -> None:
    # The general path, forced by a character the shortcut does not take; its hash is
    # compared on the same visible text.
    fast = normalise(text, max_chars)
    slow = normalise(text + "\u200b", max_chars)
    assert (fast.text, fast.content_hash) == (slow.text, slow.content_hash)
    assert fast.truncated == slow.truncated


# Each of these is gone from the canonical text, so none may count towards the cut that bounds
# the work on a long body: padding a post with them must not push its words out of the text.
PADDING = [" ", "\n", "\t\r", "\u200b", "\u2060\ufeff", "\x00\x7f", "\u202c", " \u202a", "\u00ad"]


@pytest.mark.parametrize("pad", PADDING)
def test_padding_that_folding_removes_cannot_hide_the_words_after_it(pad: str) -> None:
    text = pad * 90_000 + "you idiot" + pad * 10
    assert len(text) > 4 * 20_000
    result = normalise(text, 20_000)
    assert result.text == "you idiot"
    assert not result.truncated
    assert result.content_hash == normalise("you idiot", 20_000).content_hash


def test_a_long_text_of_words_is_still_cut_where_its_words_fill_the_limit() -> None:
    result = normalise(" \u200b".join(["word"] * 1_000_000), 100)
    assert result.truncated
    assert result.text == " ".join(["word"] * 21)[:100]


_DROPPED = [" ", "\n", "\t", "\u200b", "\x00", "\u202a", "\u202c", "\u00ad"]
_KEPT = ["a", "Z", "9", "\u00e9", "e\u0301", "\uff41", "\u1100\u1161\u11a8", "\U0001f4a3"]
_MIXED = st.lists(st.sampled_from([*_DROPPED, *_KEPT]), max_size=200).map("".join)
_RUNS = st.lists(
    st.tuples(st.sampled_from(_DROPPED), st.integers(0, 60), st.sampled_from(_KEPT)),
    max_size=30,
).map(lambda runs: "".join(pad * n + kept for pad, n, kept in runs))
_KEPT_CHAR = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


@given(st.one_of(_MIXED, _RUNS), st.integers(min_value=1, max_value=12))
def test_a_long_text_reads_as_if_it_had_been_folded_whole(text: str, max_chars: int) -> None:
    # The reference folds the whole text, however long, then cuts to the limit: the bounded
    # path must give the same text whatever share of it folding removes.
    whole = _folded(text)
    result = normalise(text, max_chars)
    assert result.text == whole[:max_chars]
    assert result.truncated == (
        len(whole) > max_chars or len(_KEPT_CHAR.findall(text)) > 4 * max_chars
    )


def _default_ignorables() -> list[str]:
    """Every Default_Ignorable_Code_Point, as the regex library's Unicode data has them."""
    import regex  # the dev extra's

    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    return [chr(cp) for cp in range(0x110000) if ignorable.match(chr(cp))]


def test_every_character_unicode_calls_ignorable_is_dropped_between_letters() -> None:
    # They render as nothing, so a reader sees "idiot" where the model read "i\ufe0fd\ufe0f...":
    # variation selectors, tag characters, U+180E, U+115F and the like after each letter took
    # 40 of the golden set's 52 abusive posts to 0 flagged, in the cascade too.
    plain = normalise("you idiot", 100)
    for char in _default_ignorables():
        hidden = normalise(char.join("you idiot"), 100)
        assert hidden.text == plain.text, f"U+{ord(char):04X} kept"
        assert hidden.content_hash == plain.content_hash


def test_ignorable_filler_cannot_push_words_past_the_cut() -> None:
    # A reader sees only the insult; 20,000 U+FE0F before it used to leave it out of view.
    found = normalise("\ufe0f" * 90_000 + "you idiot", 20_000)
    assert found.text == "you idiot"
    assert not found.truncated


def test_struck_through_letters_read_as_the_letters() -> None:
    # U+0336 after each letter draws a line through the word, which stays readable: the model
    # read other words (21 of the golden set's 52 abusive posts still flagged, against 40).
    for overlay in ("\u0334", "\u0336", "\u0338", "\u20d2"):
        assert normalise(overlay.join("you idiot") + overlay, 100).text == "you idiot"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        # An override ends where a reader's display ends it: at PDF, at the next embedding,
        # override or isolate control, or at a paragraph's end. Only PDF and a newline ended
        # it here, so the model read these reversed (0 of the golden set's 52 flagged).
        ("\u202etoidi na era uoy\u202d", "you are an idiot"),
        ("\u202etoidi na era uoy\u202d ok", "you are an idiot ok"),
        ("\u202etoidi na era uoy\u202a ok", "you are an idiot ok"),
        ("\u202etoidi\u202b", "idiot"),
        ("\u2067\u202etoidi na era uoy\u2069 ok", "you are an idiot ok"),
        ("\u202eko\u2029you are an idiot", "ok you are an idiot"),
    ],
)
def test_a_right_to_left_override_ends_where_the_display_ends_it(written: str, read: str) -> None:
    assert normalise(written, 1000).text == read
