"""Canonical form of a post's text, and the hash that keys the verdict cache.

The model sees exactly the canonical text, and the hash is taken over exactly that text, so a
cached verdict is always the verdict for the text it is served for. The canonical text is what a
reader sees: HTML rendered (where the pack says its platform writes HTML), bidi overrides read in
the order a display shows their text, one compatibility form, no invisible characters; and of a
text past what the pack reads (its limit, in windows), its beginning and its end. A text over
the limit is read in overlapping windows of the limit.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata

from modfleet.carrier import carrier
from modfleet.normalise import bidi, chars, markup
from modfleet.normalise.markup import TextFormat


@carrier
class Normalised:
    text: str
    content_hash: str
    truncated: bool


def normalise(
    text: str, max_chars: int, windows: int = 1, text_format: TextFormat = "plain"
) -> Normalised:
    """Render HTML (``text_format="html"``) as a browser shows it; read bidi overrides as
    displayed, NFKC-fold, strip invisible, overlay and control characters, collapse whitespace;
    of a text over what ``windows`` windows of ``max_chars`` read (``read_budget``), keep its
    beginning and its end."""
    if text_format == "html":
        rendering = markup.rendered(writable(text), html_reach(max_chars, windows))
        return read_rendered(rendering, max_chars, windows)
    return _read(text, max_chars, windows, False)


def html_reach(max_chars: int, windows: int) -> int:
    """How far from each end of a long HTML post it is rendered: as far as the plain path
    reads of a long text (``_bounded``'s count, at most)."""
    return 2 * read_budget(max_chars, windows)


def read_rendered(rendering: tuple[str, bool], max_chars: int, windows: int = 1) -> Normalised:
    """``normalise`` of an HTML post that ``markup.rendered`` rendered (maybe in a child
    process, ``stream.render``) with ``html_reach(max_chars, windows)``."""
    text, rendered_cut = rendering
    return _read(text, max_chars, windows, rendered_cut)


def _read(text: str, max_chars: int, windows: int, rendered_cut: bool) -> Normalised:
    if windows > 1 and len(text) > max_chars and bidi.costly(text):
        windows = 1  # a step per control: a post stuffed with them costs what it did before
    budget = read_budget(max_chars, windows)
    long = len(text) > 4 * budget
    if not long and text.isascii() and text.isprintable():
        # Most posts: NFKC leaves printable ASCII as it is, and it holds no override, invisible
        # or control character, so only the whitespace collapse remains (str.split's whitespace
        # is the regex's on such text). Same result, a few microseconds less a post.
        canon = " ".join(text.split())
        raw_cut = False
    else:
        # Each end read must fold to its share of the cut: half, or all where only one is kept.
        count = 2 * budget if budget >= len(_ELLIPSIS) + 2 else 4 * budget
        if text.isascii():  # no override, mark or invisible: the same reading, in C, not re
            bounded, raw_cut = _bounded_ascii(text, count) if long else (text, False)
            canon = " ".join(bounded.translate(_ASCII_CONTROLS).split())
        else:
            bounded, raw_cut = _bounded(text, count) if long else (text, False)
            canon = _folded(bidi.displayed(bounded))
    truncated = rendered_cut or raw_cut or len(canon) > budget
    if truncated:
        canon = _cut(canon, budget)
    digest = hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()
    return Normalised(text=canon, content_hash=digest, truncated=truncated)


def read_budget(max_chars: int, windows: int) -> int:
    """How much of a canonical text ``windows`` overlapping windows of ``max_chars`` read."""
    if windows < 1:
        raise ValueError(f"windows must be at least 1, not {windows}")
    return max_chars + (windows - 1) * (max_chars - _overlap(max_chars))


def windows(canon: str, max_chars: int) -> list[str]:
    """The windows of ``max_chars`` the model reads a canonical text in: the text itself when it
    fits. They overlap, so that a phrase a window's edge cuts is whole in its neighbour, and the
    last ends at the text's end; a text within ``read_budget(max_chars, n)`` takes n at most."""
    if len(canon) <= max_chars:
        return [canon]
    last = len(canon) - max_chars
    starts = [*range(0, last, max_chars - _overlap(max_chars)), last]
    return [canon[start : start + max_chars] for start in starts]


def _overlap(max_chars: int) -> int:
    # A sentence or two: what an edge may cut and the next window must hold whole.
    return min(200, max_chars // 8)


# Folding would turn U+2026 into "...": a poster's own " … " never reads as the cut.
_ELLIPSIS = " \u2026 "


def _cut(canon: str, max_chars: int) -> str:
    """``canon``'s first half and its end, either side of " … ", in max_chars at most: abuse
    written after 20,000 characters of filler is read all the same. Under 5 characters (no
    room for both), its first part only."""
    if len(canon) <= max_chars:
        return canon
    if max_chars < len(_ELLIPSIS) + 2:
        return canon[:max_chars]
    head = min(max_chars // 2, max_chars - len(_ELLIPSIS) - 1)
    tail = max_chars - head - len(_ELLIPSIS)
    # Stripped: a canonical text never holds two spaces in a row, a cut one included.
    return canon[:head].rstrip() + _ELLIPSIS + canon[-tail:].lstrip()


def writable(text: str) -> str:
    """``text`` with U+FFFD for each lone surrogate (a JSON escape such as "\\ud83d" read from a
    platform or a model server): UTF-8 cannot encode one, and orjson refuses to write it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return chars.LONE_SURROGATE.sub("\ufffd", text)
    return text


def _bounded(text: str, count: int) -> tuple[str, bool]:
    """What is read of a long text: up to its ``count``-th character that folding keeps, and
    from its ``count``-th last, so that the work on a multi-megabyte body stays bounded, and no
    run of characters that folding removes (spaces, invisible, control) can push words out of
    what the model reads. Folding keeps each such character as at least one, bar a few
    compositions (4 to 1 at most, Greek's U+1F84), so what is left out is past a quarter of
    ``count`` from either end. Also whether anything is left out."""
    found = chars.kept_run(count).match(text)
    if found is None:
        return text, False
    rest = text[found.end() :]
    last = chars.kept_run(count).match(rest[::-1])
    if last is None or chars.BLANK.fullmatch(rest, 0, len(rest) - last.end()):
        return text, False
    start = len(rest) - last.end()
    marks = chars.scripts().marks.match(rest, start)  # a letter left out leaves its marks no base
    start = marks.end() if marks else start
    middle = bidi.left_out(rest[:start]) if chars.OVERRIDES.search(text) else " "
    return text[: found.end()] + middle + rest[start:], True


# Of ASCII, what folding removes (``chars.CONTROL``: not a space, removed), and what it drops or
# collapses (``chars.DROPPED``: whitespace and those controls, every byte to the space, and DEL).
_ASCII_CONTROLS = dict.fromkeys(c for c in range(0x80) if chars.CONTROL.match(chr(c)))
_ASCII_DROPPED = bytes(c for c in range(0x80) if chars.BLANK.fullmatch(chr(c)))
_ASCII_KEPT = re.compile(b"[^" + re.escape(_ASCII_DROPPED) + b"]")
_BLOCK = 4096


def _bounded_ascii(text: str, count: int) -> tuple[str, bool]:
    """``_bounded`` of an ASCII text, counting kept characters a block at a time with
    ``bytes.translate`` rather than matching ``chars.kept_run``: a few ms for 4 MiB, not 80+.
    ASCII holds no override and no mark, so what is left out reads as one space."""
    data = text.encode("ascii")
    head = _past_kept(data, count)
    if head is None:
        return text, False
    rest = data[head:]
    back = _past_kept(rest[::-1], count)
    if back is None or not rest[: len(rest) - back].translate(None, _ASCII_DROPPED):
        return text, False
    return text[:head] + " " + text[len(text) - back :], True


def _past_kept(data: bytes, count: int) -> int | None:
    """Where ``data``'s ``count``-th kept character ends; None if it keeps fewer."""
    seen = 0
    for at in range(0, len(data), _BLOCK):
        block = data[at : at + _BLOCK]
        kept = len(block.translate(None, _ASCII_DROPPED))
        if seen + kept >= count:
            found = next(itertools.islice(_ASCII_KEPT.finditer(block), count - seen - 1, None))
            return at + found.end()
        seen += kept
    return None


def _folded(text: str) -> str:
    canon = unicodedata.normalize("NFKC", text)
    canon = chars.INVISIBLE.sub("", canon)
    if chars.ASTRAL.search(canon):
        canon = chars.INVISIBLE_ASTRAL.sub("", canon)
    canon = chars.CONTROL.sub("", canon)
    return chars.SPACE.sub(" ", canon).strip()
