"""Markdown emphasis inside a word, read through: ``k*ill*``, ``f**u**ck``, ``w~~orth~~less``.

A platform that renders markdown shows such a word whole, and a reader of plain text reads past
the marks; the model, reading words, saw two. The text is scored as written and, where a pair
of ``*``, ``**`` or ``~~`` around letters opens or closes inside a word, read through as well:
the worse of the two readings counts. Both, because joining cannot tell a word split by
emphasis (``f**u**cking``) from two words glued by it (``kill*a*yourself``): read through
alone, the second would hide both of its words.

A run with no closing pair (``f***ing``, ``sh*t``) is censoring, and emphasis around whole
words hides nothing: neither is read through.
"""

from __future__ import annotations

import re

_PAIR = re.compile(r"(\*\*|\*|~~)([^\W_]+)\1")
RULE = _PAIR.pattern  # named in the embedded model's id, as the word view's rules are


def read_through(text: str) -> str | None:
    """``text`` with its in-word emphasis read through, or None where it has none."""
    if "*" not in text and "~" not in text:
        return None
    read = _PAIR.sub(_unwrapped, text)
    return read if read != text else None


def _unwrapped(match: re.Match[str]) -> str:
    text, (start, end) = match.string, match.span()
    if text[start - 1 : start].isalpha() or text[end : end + 1].isalpha():
        return match.group(2)
    return match.group(0)
