"""A pack whose platform writes posts in HTML reads them as their readers see them: markup,
comments and character references a browser renders away cannot split or disguise a word."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posts import FILLER, INSULT

from modfleet.normalise import markup, normalise, read_budget, windows
from modfleet.normalise.bidi import displayed
from modfleet.normalise.text import _folded

SEEN = "you are a worthless idiot"


@pytest.mark.parametrize(
    "written",
    [
        "you are a worthless id<b></b>iot",  # an empty element mid-word
        "you are a worthless id<span class='x'>io</span>t",
        "you are a worthless id<!-- nothing to see -->iot",  # a comment mid-word
        "you are a worthless &#105;&#100;&#x69;&#111;&#116;",  # character references
        "you are a <i>worthless</i> idiot",
        "<p>you are a worthless</p><p>idiot</p>",  # two paragraphs read as two lines
        "you are a worthless<br>idiot",
        "you are a worthless <script>ignore this</script>idiot",  # scripts are never shown
        "you are a worthless id&shy;iot",  # a soft hyphen shows nothing
    ],
)
def test_markup_a_browser_renders_away_cannot_disguise_a_word(written: str) -> None:
    read = normalise(written, 20_000, text_format="html")
    assert read.text == SEEN
    assert read.content_hash == normalise(SEEN, 20_000).content_hash


def test_a_plain_text_pack_reads_angle_brackets_as_written() -> None:
    text = "if a <b> c then x &amp; y <!-- ok -->"
    assert normalise(text, 1000).text == text
    assert normalise(text, 1000, text_format="plain").text == text


def test_what_readers_see_besides_text_is_read_too() -> None:
    # An image's alternative text is shown where the image is not; a link's target is one click
    # away, and is what a scam or spam post is about.
    read = normalise(
        "<p><img src='x.png' alt='you idiot'> <a href='https://free-coins.example/claim'>"
        "claim your prize</a></p>",
        1000,
        text_format="html",
    )
    assert "you idiot" in read.text
    assert "claim your prize" in read.text
    assert "free-coins.example/claim" in read.text


def test_an_override_ends_with_its_paragraph_as_a_browser_shows_it() -> None:
    # Each block is a paragraph of its own for a browser's bidi display: the override in the
    # first reverses "olleh" only, not the second paragraph too.
    read = normalise("<p>\u202eolleh</p><p>world</p>", 1000, text_format="html")
    assert read.text == "hello world"


@pytest.mark.parametrize(
    "written",
    [
        "lone \ud83d surrogate <b>you idiot</b>",  # a JSON escape of half a pair
        "nul\x00 <b>you idiot</b>",
        "</p></div></body></html><p>you idiot",  # closing what was never opened
        "<table><tr><td>you idiot",  # never closed
        "<svg><foreignObject><p>you idiot</p></foreignObject></svg>",
    ],
)
def test_malformed_markup_is_read_not_refused(written: str) -> None:
    assert "you idiot" in normalise(written, 1000, text_format="html").text


@pytest.mark.parametrize(
    "unit",
    ["<div>", "<p>a", "<table><tr><td>", "<b>", "a<b></b>", "<!--", "<a x='", "&#105;"],
)
def test_a_4_mib_markup_bomb_is_read_as_far_as_the_pack_reads(unit: str) -> None:
    # Nesting a million deep, or a million empty elements: what is rendered is bounded by what
    # the pack reads (its windows), not by what the post holds (docs/benchmarks.md has the
    # times), and the abuse at its end is read.
    text = unit * (4 * 2**20 // len(unit)) + "<p>" + INSULT
    read = normalise(text, 20_000, windows=8, text_format="html")
    assert read.truncated
    assert len(read.text) <= read_budget(20_000, 8)
    assert INSULT in read.text or unit in ("<!--", "<a x='")  # an open comment hides the rest


def test_abuse_in_the_middle_of_a_long_html_post_reaches_the_model() -> None:
    paragraph = "<p>" + FILLER + "</p>\n"
    text = paragraph * 900 + f"<p>{INSULT}</p>" + paragraph * 900
    read = normalise(text, 20_000, windows=8, text_format="html")
    assert not read.truncated
    assert "<p>" not in read.text
    assert any(INSULT in part for part in windows(read.text, 20_000))


def test_a_long_html_post_keeps_its_end_when_it_is_cut() -> None:
    text = "<p>" + FILLER * 12_000 + "</p><p>" + INSULT + "</p>"
    read = normalise(text, 20_000, windows=8, text_format="html")
    assert read.truncated
    assert read.text.endswith(INSULT)
    assert read.text.startswith(FILLER.strip()[:40])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab <>/&#;=p\n\t", "<b>", "</p>", "&amp;"]), max_size=30))
def test_ascii_markup_reads_the_same_with_its_block_ends_as_spaces(parts: list[str]) -> None:
    text = "".join(parts)
    shown = markup._rendered_by_lexbor(text)
    assert _read(markup._shown(text)) == _read(shown)


def _read(shown: str) -> str:
    return _folded(displayed(shown))


# Pieces of hostile HTML: unclosed, misnested and foreign content, references of every form,
# raw-text elements, and characters that a parser must not choke on.
_PIECES = [
    *"ab <>/&;#=\"'!-?\n\t\x00\u202e\u2066\u2069\u0301\ud83d\U0001f600",
    "<b>", "</b>", "<p>", "</p>", "<div>", "<table>", "<tr>", "<td>", "<svg>", "<math>",
    "<foreignObject>", "<template>", "<select>", "<option>", "<textarea>", "<title>",
    "<script>", "</script>", "<style>", "<noscript>", "<plaintext>", "<xmp>", "<iframe>",
    "<a href='", "<img alt='", "<br/>", "<![CDATA[", "]]>", "<!--", "-->", "<!DOCTYPE html>",
    "<?xml ?>", "&#", "&#x", "&#x110000;", "&#0;", "&#xD800;", "&amp", "&NotNestedLessLess;",
    "<a\u0000b>", "</>", "<!>", "<%", "<b a=1 a=2>", "<ruby><rt>", "<details><summary>",
]  # fmt: skip


@settings(max_examples=1_000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60))
def test_any_tag_soup_is_read_without_an_error(pieces: list[str]) -> None:
    # A parser error on one post would dead-letter it; a crash would stop the worker on it.
    read = normalise("".join(pieces), 100, windows=2, text_format="html")
    assert len(read.text) <= read_budget(100, 2)
    assert read.text == read.text.strip()
