"""Canonical form of a post's text, and the hash that keys the verdict cache.

The model sees exactly the canonical text, and the hash is taken over exactly that text, so a
cached verdict is always the verdict for the text it is served for.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

from modfleet.carrier import carrier

# Unicode's Default_Ignorable_Code_Point: zero-width and bidi controls, variation selectors, tag
# characters, fillers. They render as nothing, so a reader sees "idiot" in "i\ufe0fd\ufe0fiot"
# while the model saw other words, and two identical-looking posts hashed apart. The ranges are
# Unicode's (tests check them against the regex library's data).
_IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
_IGNORABLE_ASTRAL = "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
# Overlay marks (canonical combining class 1) strike through or slash the letter before them:
# "y\u0336o\u0336u\u0336" reads as a struck-out "you", which the model saw as other words. From
# the running Python's Unicode data (all such marks lie below U+20000).
_OVERLAYS = [c for c in map(chr, range(0x20000)) if unicodedata.combining(c) == 1]
# Split at U+10000: a class holding astral characters costs re twice as much on every text,
# and astral ones are checked only in texts that hold an astral character (emoji, mostly).
_INVISIBLE = re.compile("[" + _IGNORABLE + "".join(c for c in _OVERLAYS if c < "\U00010000") + "]")
_INVISIBLE_ASTRAL = re.compile(
    "[" + _IGNORABLE_ASTRAL + "".join(c for c in _OVERLAYS if c >= "\U00010000") + "]"
)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Remaining C0/C1 controls (tab, newline and CR become spaces below).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
# A right-to-left override displays the characters after it in reverse, up to where a display
# ends it: a pop (PDF), the next embedding, override or isolate control, or a paragraph's end
# (Unicode's paragraph separators): "\u202etoidi" reads as "idiot". The canonical text is what
# a reader sees. An override a nested embedding interrupts (RLO ... LRE PDF ...) is read only
# up to the embedding.
_OVERRIDE = re.compile("\u202e([^\u202a-\u202e\u2066-\u2069\n\r\x1c-\x1e\x85\u2029]*)\u202c?")


@carrier
class Normalised:
    text: str
    content_hash: str
    truncated: bool


def normalise(text: str, max_chars: int) -> Normalised:
    """NFKC-fold, undo RTL overrides, strip invisible, overlay and control characters, collapse
    whitespace, cut to max_chars."""
    long = len(text) > 4 * max_chars
    if not long and text.isascii() and text.isprintable():
        # Most posts: NFKC leaves printable ASCII as it is, and it holds no override, invisible
        # or control character, so only the whitespace collapse remains (str.split's whitespace
        # is the regex's on such text). Same result, a few microseconds less a post.
        canon = " ".join(text.split())
        raw_cut = False
    else:
        cut = _raw_cut(text, max_chars) if long else len(text)
        raw_cut = cut < len(text)
        canon = _folded(text[:cut])
    truncated = raw_cut or len(canon) > max_chars
    if truncated:
        canon = canon[:max_chars]
    digest = hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()
    return Normalised(text=canon, content_hash=digest, truncated=truncated)


def writable(text: str) -> str:
    """``text`` with U+FFFD for each lone surrogate (a JSON escape such as "\\ud83d" read from a
    platform or a model server): UTF-8 cannot encode one, and orjson refuses to write it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text


def _raw_cut(text: str, max_chars: int) -> int:
    """Where to cut a long text before folding it: after 4x max_chars characters that folding
    keeps, so that the work on a multi-megabyte body stays bounded, and no run of characters
    that folding removes (spaces, invisible, control) can push the words after it out of what
    the model reads. Folding keeps each such character as at least one, bar a few compositions
    (3 to 1 at most), so every character past the cut would be past max_chars anyway."""
    found = _kept_run(4 * max_chars).match(text)
    return len(text) if found is None else found.end()


# Characters folding removes or collapses: whitespace, and the classes of _CONTROL, _INVISIBLE
# and _INVISIBLE_ASTRAL.
_DROPPED = (
    r"\s" + _CONTROL.pattern[1:-1] + _INVISIBLE.pattern[1:-1] + _INVISIBLE_ASTRAL.pattern[1:-1]
)


@functools.lru_cache(maxsize=16)
def _kept_run(count: int) -> re.Pattern[str]:
    """Matches a text's start up to and including its ``count``-th kept character."""
    return re.compile(f"(?:[{_DROPPED}]*[^{_DROPPED}]){{{count}}}")


def _folded(text: str) -> str:
    canon = unicodedata.normalize("NFKC", text)
    canon = _OVERRIDE.sub(lambda m: m.group(1)[::-1], canon)
    canon = _INVISIBLE.sub("", canon)
    if _ASTRAL.search(canon):
        canon = _INVISIBLE_ASTRAL.sub("", canon)
    canon = _CONTROL.sub("", canon)
    return _SPACE.sub(" ", canon).strip()
