"""A post over the pack's limit is read in overlapping windows, so that abuse in its middle
reaches the model; past the windows' reach, its beginning and its end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from posts import FILLER, INSULT

from modfleet.normalise import normalise, read_budget, windows


def test_abuse_in_the_middle_of_a_long_post_reaches_the_model() -> None:
    # 64,800 characters either side: a one-window read (20,000) left the insult out.
    text = FILLER * 900 + INSULT + " " + FILLER * 900
    assert len(text) > 120_000
    assert INSULT not in normalise(text, 20_000).text
    read = normalise(text, 20_000, windows=8)
    assert not read.truncated
    parts = windows(read.text, 20_000)
    assert len(parts) <= 8
    assert all(len(part) <= 20_000 for part in parts)
    assert any(INSULT in part for part in parts)


def test_one_window_reads_as_the_limit_alone_did() -> None:
    text = FILLER * 1_000 + INSULT
    assert normalise(text, 20_000, windows=1) == normalise(text, 20_000)
    assert read_budget(20_000, 1) == 20_000


def test_past_the_windows_the_beginning_and_the_end_are_read() -> None:
    text = FILLER * 9_000 + INSULT
    budget = read_budget(20_000, 8)
    assert len(text) > 4 * budget  # cut before folding too: bounded work on a huge body
    read = normalise(text, 20_000, windows=8)
    assert read.truncated
    assert len(read.text) <= budget
    assert read.text.endswith(INSULT)
    assert len(windows(read.text, 20_000)) <= 8


def test_texts_that_fit_one_window_are_their_own_window() -> None:
    assert windows("you idiot", 20_000) == ["you idiot"]
    assert windows("x" * 20_000, 20_000) == ["x" * 20_000]


@given(
    length=st.integers(1, 3_000),
    max_chars=st.integers(1, 400),
    count=st.integers(1, 12),
    data=st.data(),
)
def test_every_short_phrase_lies_whole_in_one_window(
    length: int, max_chars: int, count: int, data: st.DataObject
) -> None:
    # A phrase cut by a window's edge is whole in its neighbour: windows overlap by an eighth of
    # the limit (at most 200 characters).
    text = "".join(chr(0x4E00 + i % 20_000) for i in range(length))  # every character distinct
    budget = read_budget(max_chars, count)
    text = text[:budget]
    parts = windows(text, max_chars)
    assert 1 <= len(parts) <= count
    assert all(len(part) <= max_chars for part in parts)
    assert parts[0] == text[:max_chars]
    assert parts[-1] == text[-max_chars:]
    overlap = min(200, max_chars // 8)
    size = data.draw(st.integers(1, max(1, overlap)))
    start = data.draw(st.integers(0, max(0, len(text) - size)))
    phrase = text[start : start + size]
    assert any(phrase in part for part in parts)


@pytest.mark.parametrize("count", [0, -1])
def test_a_window_count_under_one_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="windows"):
        read_budget(20_000, count)


def test_a_reversed_insult_in_a_long_posts_middle_is_read_as_displayed() -> None:
    text = FILLER * 900 + "\u202e" + INSULT[::-1] + "\u202c " + FILLER * 900
    read = normalise(text, 20_000, windows=8)
    assert not read.truncated
    assert INSULT in read.text


def test_a_post_stuffed_with_bidi_controls_is_read_as_one_window() -> None:
    # Each control costs the display order a step in Python: 1.2 million of them in a 4 MiB
    # post took 3.4 s of CPU when read in eight windows. Past 100,000, one window is read, as
    # before windows (0.5 s).
    stuffed = "\u2067\u202ea\u2069" * 400_000 + INSULT
    assert normalise(stuffed, 20_000, windows=8) == normalise(stuffed, 20_000)
    assert normalise(stuffed, 20_000, windows=8).text.endswith(INSULT)
    # A long post with a few overrides is still read whole.
    sparse = ("\u2067\u202ea\u2069 " + FILLER) * 1_500
    assert not normalise(sparse, 20_000, windows=8).truncated
