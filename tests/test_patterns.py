"""A word list as one pattern (``modfleet/patterns.py``)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from modfleet.patterns import one_of


@given(
    st.lists(st.text("abk$. ", min_size=1, max_size=5), max_size=8), st.text("abk$. ", max_size=30)
)
def test_the_tree_finds_what_a_plain_search_finds(words: list[str], text: str) -> None:
    assert bool(re.search(one_of(words), text)) == any(word in text for word in words)


def test_the_longest_word_is_found_where_several_start() -> None:
    assert re.findall(one_of(["ky", "kys", "kyss", "a.b"]), "x kyss a.b") == ["kyss", "a.b"]
    assert re.findall(one_of(["a.b"]), "axb a.b") == ["a.b"]  # symbols are themselves
    assert re.search(one_of([]), "anything") is None
