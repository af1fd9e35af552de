"""Marks inside a word, read through: markdown emphasis (``k*ill*``, ``f**u**ck``,
``w~~orth~~less``) and pictographs between letters (``k🔪ill``).

A platform that renders markdown shows an emphasised word whole, and a reader reads past the
marks and the emoji; the model, reading words, saw two. A text that holds such marks is scored
as written and read through as well: the worse of the two readings counts. Both, because
joining cannot tell a word split by a mark (``f**u**cking``) from two words glued by one
(``kill*a*yourself``): read through alone, the second would hide both of its words.

An emphasis run with no closing pair (``f***ing``, ``sh*t``) is censoring, emphasis around
whole words hides nothing, and an emoji between words is punctuation: none is read through.
"""

from __future__ import annotations

import re

_PAIR = re.compile(r"(\*\*|\*|~~)([^\W_]+)\1")
# Emoji and other pictographs (with their variation selector and joiner) between two letters.
_PICTURES = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d"
_PICTURED = re.compile(f"(?<=[^\\W\\d_])[{_PICTURES}]+(?=[^\\W\\d_])")
_HAS_PICTURE = re.compile(f"[{_PICTURES}]")
RULES = (_PAIR.pattern, _PICTURED.pattern)  # named in the embedded model's id


def read_through(text: str) -> str | None:
    """``text`` with the marks inside its words read through, or None where it has none."""
    read = text
    if "*" in read or "~" in read:
        read = _PAIR.sub(_unwrapped, read)
    if not read.isascii() and _HAS_PICTURE.search(read):
        read = _PICTURED.sub("", read)
    return read if read != text else None


def _unwrapped(match: re.Match[str]) -> str:
    text, (start, end) = match.string, match.span()
    if text[start - 1 : start].isalpha() or text[end : end + 1].isalpha():
        return match.group(2)
    return match.group(0)
