import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modfleet.normalise import normalise
from modfleet.normalise.bidi import Embeddings, displayed
from modfleet.normalise.text import _bounded, _bounded_ascii, _folded


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
    result = normalise("a" * 40 + "b" * 10, 10)
    assert result.text == "aaaaa \u2026 bb"
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
    assert result.text == " ".join(["word"] * 10) + " \u2026 " + " ".join(["word"] * 10)[-47:]


_DROPPED = [" ", "\n", "\t", "\u200b", "\x00", "\u202a", "\u202c", "\u00ad"]
_KEPT = ["a", "Z", "9", "\u00e9", "e\u0301", "\uff41", "\u1100\u1161\u11a8", "\U0001f4a3"]
_MIXED = st.lists(st.sampled_from([*_DROPPED, *_KEPT]), max_size=200).map("".join)
_RUNS = st.lists(
    st.tuples(st.sampled_from(_DROPPED), st.integers(0, 60), st.sampled_from(_KEPT)),
    max_size=30,
).map(lambda runs: "".join(pad * n + kept for pad, n, kept in runs))
_ASCII_DROPPED = [" ", "\n", "\t", "\r", "\x00", "\x0b", "\x1c", "\x7f"]
_ASCII_KEPT = ["a", "Z", "9", "!", "~"]
_ASCII_MIXED = st.lists(st.sampled_from([*_ASCII_DROPPED, *_ASCII_KEPT]), max_size=200).map("".join)
# Runs past the 4,096-byte blocks the ASCII path counts in, so that a cut falls inside, at the
# edge of, and beyond a block.
_ASCII_RUNS = st.lists(
    st.tuples(st.sampled_from(_ASCII_DROPPED), st.integers(0, 9_000), st.sampled_from(_ASCII_KEPT)),
    max_size=12,
).map(lambda runs: "".join(pad * n + kept for pad, n, kept in runs))


_KEPT_CHAR = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


@given(st.one_of(_MIXED, _RUNS, _ASCII_MIXED, _ASCII_RUNS), st.integers(min_value=1, max_value=12))
def test_a_long_text_reads_as_if_it_had_been_folded_whole(text: str, max_chars: int) -> None:
    # The reference folds the whole text, however long, then cuts to the limit: the bounded
    # path must give the same text whatever share of it folding removes. ASCII has a path of
    # its own (bytes counted in C rather than a regex over the text), held to the same.
    whole = _folded(displayed(text))
    result = normalise(text, max_chars)
    assert result.text == _cut_as_specified(whole, max_chars)
    assert result.truncated == (
        len(whole) > max_chars or len(_KEPT_CHAR.findall(text)) > 4 * max_chars
    )


_ASCII_BLOCKS = st.lists(
    st.tuples(
        st.sampled_from(_ASCII_DROPPED),
        st.integers(0, 9_000),
        st.sampled_from(_ASCII_KEPT),
        st.integers(1, 3_000),
    ),
    max_size=8,
).map(lambda runs: "".join(pad * n + kept * m for pad, n, kept, m in runs))


@given(_ASCII_BLOCKS, st.integers(min_value=1, max_value=5_000))
def test_the_ascii_bound_is_the_general_bound(text: str, count: int) -> None:
    assert _bounded_ascii(text, count) == _bounded(text, count)


def test_the_ascii_bound_cuts_inside_and_at_the_edge_of_a_block() -> None:
    for count in (4_095, 4_096, 4_097, 10_000):
        text = "ab " * 20_000
        bounded, cut = _bounded_ascii(text, count)
        assert cut
        assert (bounded, cut) == _bounded(text, count)


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
        if char == "\u202e":
            continue  # nested overrides: a display shows "ytoidi uo" (see the override tests)
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
        # An override ends where a reader's display ends it: at its PDF, at an isolate's end,
        # or at a paragraph's end. Only PDF and a newline ended it here, so the model read
        # these reversed (0 of the golden set's 52 flagged).
        ("\u202etoidi na era uoy\u202d", "you are an idiot"),
        # A nested embedding or override stays inside the override's run, which rule L2
        # reverses whole: a display shows " okyou are an idiot".
        ("\u202etoidi na era uoy\u202d ok", "okyou are an idiot"),
        ("\u202etoidi na era uoy\u202a ok", "okyou are an idiot"),
        ("\u202etoidi\u202b", "idiot"),
        ("\u2067\u202etoidi na era uoy\u2069 ok", "you are an idiot ok"),
        ("\u202eko\u2029you are an idiot", "ok you are an idiot"),
    ],
)
def test_a_right_to_left_override_ends_where_the_display_ends_it(written: str, read: str) -> None:
    assert normalise(written, 1000).text == read


def _cut_as_specified(canon: str, max_chars: int) -> str:
    """The cut a long canonical text gets: its first half and its end, either side of " … "."""
    if len(canon) <= max_chars:
        return canon
    if max_chars < 5:
        return canon[:max_chars]
    head = min(max_chars // 2, max_chars - 4)
    tail = max_chars - head - 3
    return canon[:head].rstrip() + " \u2026 " + canon[-tail:].lstrip()


# What a display shows (checked against the unicode-bidi crate's full reordering, through the
# python-bidi package, for these Latin-only texts).
@pytest.mark.parametrize(
    ("written", "read"),
    [
        # An override resumes after a nested embedding's PDF pops it, and rule L2 reverses the
        # override's whole run, the nested text in it included: the model read "na era uoy".
        ("\u202etoidi\u202a\u202c na era uoy", "you are an idiot"),
        ("\u202etoidi \u202aare\u202c uoy", "you are idiot"),
        ("\u202etoidi \u202dare\u202c uoy", "you are idiot"),
        ("\u202etoidi \u2066are\u2069 uoy", "you are idiot"),
        # A PDF inside an isolate cannot end the override outside it.
        ("\u202etoidi\u2066\u202c\u2069 na era uoy", "you are an idiot"),
        # Past the depth of 125 an embedding is ignored, and so is the PDF that ends it.
        ("\u202e" + "\u202b" * 200 + "\u202c" * 200 + "toidi", "idiot"),
        ("\u202b" * 62 + "\u202etoidi", "idiot"),
        ("\u202b" * 63 + "\u202etoidi", "toidi"),
        # An unmatched PDF is ignored; a paragraph's end resets the stack.
        ("\u202etoidi\u202c\u202c na era uoy", "idiot na era uoy"),
        ("\u202etoidi\u2029\u202c na era uoy", "idiot na era uoy"),
        # A tab ends the override's run for the display (rule L1), not the override.
        ("\u202euoy\ttoidi", "you idiot"),
        # Each override nested in the one before: what a display shows is no word.
        ("\u202e".join("you idiot"), "ytoidi uo"),
    ],
)
def test_an_override_reads_as_displayed_around_nested_embeddings(written: str, read: str) -> None:
    assert normalise(written, 1000).text == read


def test_200000_alternating_controls_leave_the_override_on() -> None:
    # Each control costs one step (these 400,000 take about 0.1 s): a megabyte of them is read
    # in linear time.
    written = "\u202e" + "\u202a\u202c" * 100_000 + "toidi" + "\u202d\u202e" * 100_000
    assert normalise(written, 1000).text == "idiot"


def test_the_embedding_stack_stops_at_125_levels_however_many_controls() -> None:
    stack = Embeddings()
    stack.read("\u202b" * 200_000)
    assert len(stack.stack) == 64  # the paragraph's level, and RLE's levels 1, 3 ... 125
    assert stack.overflow_embeddings == 200_000 - 63
    stack.read("\u202c" * (200_000 - 63) + "\u202c\u202e")
    assert stack.top == (125, "R")


def test_hebrew_and_arabic_are_read_in_logical_order_under_an_override_too() -> None:
    # An override to their own direction changes nothing a reader sees, so nothing is reversed;
    # one to the other direction shows them reversed to a reader of the script.
    hebrew, arabic = (
        "\u05d0\u05ea\u05d4 \u05d0\u05d9\u05d3\u05d9\u05d5\u05d8",
        "\u0623\u0646\u062a \u063a\u0628\u064a",
    )
    for plain in (hebrew, arabic, hebrew + " 25 " + arabic):
        assert normalise(plain, 1000).text == plain
    assert normalise("\u202e" + hebrew, 1000).text == hebrew
    assert normalise("\u202e" + arabic + "\u202c ok", 1000).text == arabic + " ok"
    assert normalise("\u202d" + hebrew[::-1], 1000).text == hebrew


def test_a_reversed_text_keeps_its_marks_on_their_letters() -> None:
    # NFKC composes no "b" with U+0301; reversed code point by code point, the accent went to
    # the letter displayed after it.
    assert normalise("\u202eab\u0301c", 1000).text == "cb\u0301a"
    with_marks = "\u063a\u064e\u0628\u0650\u064a\u0651"  # a word with its vowel signs
    assert normalise("\u202d" + with_marks[::-1], 1000).text != with_marks[::-1]
    marked = "".join(reversed(["\u063a\u064e", "\u0628\u0650", "\u064a\u0651"]))
    assert normalise("\u202d" + marked, 1000).text == with_marks


def test_the_end_of_a_long_post_is_read() -> None:
    # 25,000 "lol " hid whatever followed them from the model (which read the first 20,000
    # characters only), and the decision was allowed.
    result = normalise("lol " * 25_000 + "you are a useless idiot", 20_000)
    assert result.truncated
    assert len(result.text) <= 20_000
    assert result.text.startswith("lol lol")
    assert result.text.endswith("lol you are a useless idiot")
    assert " \u2026 " in result.text


def test_posts_that_differ_only_after_the_limit_hash_apart() -> None:
    head = "lol " * 7_500
    assert len(head) == 30_000
    kind, rude = normalise(head + "you are kind", 20_000), normalise(head + "you idiot", 20_000)
    assert kind.content_hash != rude.content_hash


def test_an_override_in_a_long_posts_end_is_read() -> None:
    reversed_insult = "\u202e" + "toidi sselesu a era uoy" + "\u202c"
    result = normalise("lol " * 25_000 + reversed_insult, 20_000)
    assert result.text.endswith("lol you are a useless idiot")


@pytest.mark.parametrize(
    "text",
    [
        # Long enough to be cut before folding (over 4x the limit), so the end is found in the
        # raw text.
        "lol " * 30_000 + "you are a useless idiot",
        "\u200b" * 500_000 + "lol " * 30_000 + "\u200b" * 500_000 + "you are a useless idiot",
        # The whole paragraph is overridden: its logical start is displayed at its end.
        "\u202e" + "toidi sselesu a era uoy" + " lol" * 30_000,
        # Known gap: an override opened in the part left out (past the first 40,000 kept
        # characters, twice the limit, and before the last 40,000) displays the text after it
        # at the paragraph's end. Of that part only its controls are carried (and a space for
        # its text), so the model reads the parts it reads in the order they are displayed,
        # not the display's end.
        pytest.param(
            "lol " * 30_000 + "\u202e" + "toidi sselesu a era uoy" + " lol" * 30_000,
            marks=pytest.mark.xfail(strict=True, reason="the text left out is not read"),
        ),
    ],
)
def test_the_displayed_end_of_a_very_long_post_is_read(text: str) -> None:
    result = normalise(text, 20_000)
    assert result.truncated
    assert len(result.text) <= 20_000
    assert result.text.startswith("lol lol")
    assert result.text.endswith("lol you are a useless idiot")


def test_a_huge_body_is_read_at_both_ends() -> None:
    result = normalise("x" * 10_000_000 + " you idiot", 100)
    assert result.text == "x" * 50 + " \u2026 " + "x" * 37 + " you idiot"


@pytest.mark.parametrize("max_chars", range(1, 13))
def test_a_tiny_limit_still_cuts_to_at_most_the_limit(max_chars: int) -> None:
    result = normalise("a" * 50 + "b" * 50, max_chars)
    assert result.truncated
    assert len(result.text) <= max_chars
    assert result.text.startswith("a")
    assert result.text.endswith("b" if max_chars >= 5 else "a")


def test_an_override_ends_with_its_paragraph_in_the_part_left_out() -> None:
    # The override ends at the newline 90,000 characters in: the end is displayed as written.
    written = "\u202e" + "lol " * 30_000 + "\n" + "lol " * 30_000 + "toidi"
    assert normalise(written, 20_000).text.endswith("lol lol toidi")
    # And with no paragraph's end, it goes on to the text's end.
    assert normalise(written.replace("\n", " "), 20_000).text.startswith("idiot lol")
