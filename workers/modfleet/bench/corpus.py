"""Posts for the benchmark, composed here: no dataset to download, and every text unique.

Unique texts matter: the 0%-hit run must miss the cache on every post, and the 100%-hit run
replays exactly these texts. About a fifth are rude, so that the policy's escalate and remove
paths (and their extra messages) are part of what is measured, as they would be in production.
"""

from __future__ import annotations

import html
import itertools
import random
from collections.abc import Iterator

import orjson

_OPENERS = [
    "honestly",
    "just saw that",
    "quick update:",
    "reminder for everyone:",
    "not sure why but",
    "can confirm",
    "hot take:",
    "for the record,",
]
_SUBJECTS = [
    "the new bridge downtown",
    "my sourdough starter",
    "the weekend farmers market",
    "this season's football league",
    "the library's reading club",
    "the city council meeting",
    "our neighbourhood cleanup",
    "the documentary about octopuses",
    "the late train from the airport",
    "the community garden",
]
_PREDICATES = [
    "was better than I expected",
    "finally opened after months of delays",
    "needs more volunteers next week",
    "made the whole street smell of bread",
    "keeps getting postponed for no reason",
    "is worth a visit if you are nearby",
    "had a surprisingly long queue this morning",
    "deserves more attention than it gets",
]
_TAILS = [
    "see you all there",
    "thanks to everyone who helped",
    "photos in the thread below",
    "would love to hear what you think",
    "",
]
_RUDE = [
    "you are a complete idiot and everyone knows it",
    "shut up, nobody asked for your stupid opinion",
    "what the fuck is wrong with you, moron",
    "you're trash and your posts are garbage",
    "only a brainless clown would post this crap",
]
_TENANTS = ["acme", "globex", "initech"]


def texts(count: int, seed: int = 20_26, run: str = "", as_html: bool = False) -> list[str]:
    """``count`` distinct texts; ``run`` makes them distinct from another call's as well;
    ``as_html``: as a platform that writes HTML stores them."""
    rng = random.Random(f"{seed}:{run}")
    made = [_text(rng, f"{run}{i}") for i in range(count)]
    return [_html(t) for t in made] if as_html else made


def _html(text: str) -> str:
    # A fediverse post's shape: a paragraph, a mention link, a character reference.
    return (
        f'<p>{html.escape(text)} <a href="https://example.social/@bench" class="mention">'
        "@<span>bench</span></a> &amp; friends</p>"
    )


def _text(rng: random.Random, serial: str) -> str:
    if rng.random() < 0.2:
        body = f"{rng.choice(_RUDE)}, {rng.choice(_SUBJECTS)} {rng.choice(_PREDICATES)}"
    else:
        body = f"{rng.choice(_OPENERS)} {rng.choice(_SUBJECTS)} {rng.choice(_PREDICATES)}"
    tail = rng.choice(_TAILS)
    # The serial is what makes each text (and so its cache key) unique.
    return f"{body}. {tail} (#{serial})" if tail else f"{body} (#{serial})"


def posts(bodies: list[str], prefix: str) -> list[bytes]:
    """post.v1 records for ``bodies``, with post ids ``prefix-0`` ... in order."""
    return [_post(f"{prefix}-{i}", i, text) for i, text in enumerate(bodies)]


def endless(prefix: str, seed: int = 20_26, as_html: bool = False) -> Iterator[bytes]:
    """Posts with unique texts and ids, for as long as a paced run asks for them."""
    rng = random.Random(f"{seed}:{prefix}")
    for i in itertools.count():
        text = _text(rng, f"{prefix}{i}")
        yield _post(f"{prefix}-{i}", i, _html(text) if as_html else text)


def _post(post_id: str, i: int, text: str) -> bytes:
    body = {"schema_version": 1, "post_id": post_id, "tenant": _TENANTS[i % 3], "text": text}
    return orjson.dumps(body)
