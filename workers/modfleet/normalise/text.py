"""Canonical form of a post's text, and the hash that keys the verdict cache.

The model sees exactly the canonical text, and the hash is taken over exactly that text, so a
cached verdict is always the verdict for the text it is served for.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from modfleet.carrier import carrier

# Zero-width and bidi-control characters are invisible to a reader; spammers insert them to dodge
# exact-match filters, so they must not make two identical-looking posts hash differently.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Remaining C0/C1 controls (tab, newline and CR become spaces below).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
# A right-to-left override displays the characters after it in reverse, up to a pop (PDF) or the
# end of the line: "\u202etoidi" reads as "idiot". The canonical text is what a reader sees.
_OVERRIDE = re.compile("\u202e([^\u202a-\u202e\n]*)(?:\u202c|$)", re.MULTILINE)


@carrier
class Normalised:
    text: str
    content_hash: str
    truncated: bool


def normalise(text: str, max_chars: int) -> Normalised:
    """NFKC-fold, undo RTL overrides, strip invisible and control characters, collapse whitespace,
    cut to max_chars."""
    # Bound the work on hostile multi-megabyte bodies: folding can shrink text, but not by 4x
    # in practice, so a raw cut at 4x the limit keeps every character that could survive.
    raw_cut = len(text) > 4 * max_chars
    if not raw_cut and text.isascii() and text.isprintable():
        # Most posts: NFKC leaves printable ASCII as it is, and it holds no override, invisible
        # or control character, so only the whitespace collapse remains (str.split's whitespace
        # is the regex's on such text). Same result, a few microseconds less a post.
        canon = " ".join(text.split())
    else:
        canon = _folded(text[: 4 * max_chars] if raw_cut else text)
    truncated = raw_cut or len(canon) > max_chars
    if truncated:
        canon = canon[:max_chars]
    digest = hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()
    return Normalised(text=canon, content_hash=digest, truncated=truncated)


def _folded(text: str) -> str:
    canon = unicodedata.normalize("NFKC", text)
    canon = _OVERRIDE.sub(lambda m: m.group(1)[::-1], canon)
    canon = _INVISIBLE.sub("", canon)
    canon = _CONTROL.sub("", canon)
    return _SPACE.sub(" ", canon).strip()
