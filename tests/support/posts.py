"""Posts for the tests, composed here so that no test reads a dataset."""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson

BENIGN = [
    "the new bridge downtown finally opened",
    "my sourdough starter survived the week",
    "anyone know a good trail for a beginner hike",
    "the library extended its weekend hours",
    "that documentary about octopuses was fascinating",
]
RUDE = [
    "you are a complete idiot and everyone knows it",
    "shut up, nobody asked for your stupid opinion",
    "what the fuck is wrong with you, moron",
    "you're trash and your posts are garbage",
]

# A long post's parts: harmless filler, and abuse to hide in it (its middle, its end).
FILLER = "What a lovely day at the beach, the sea was calm and the sand was warm. "
INSULT = "you are a worthless idiot and everyone hates you"


def post(post_id: str, text: str, tenant: str = "acme", **extra: Any) -> dict[str, Any]:
    return {"schema_version": 1, "post_id": post_id, "tenant": tenant, "text": text, **extra}


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def unique_texts(count: int, seed: int = 7) -> list[str]:
    """Distinct texts, about a quarter of them rude, each made unique by its number and by a
    tag of this call, so that no test finds its texts in the cache from another test."""
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    return [
        f"{rng.choice(RUDE if rng.random() < 0.25 else BENIGN)} (note {i}.{tag})"
        for i in range(count)
    ]


# Each malformed post, with the JSON pointer of the field a dead-letter reason must name.
MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("/post_id", {"schema_version": 1, "tenant": "acme", "text": "no id"}),
    ("/text", {"schema_version": 1, "post_id": "m-text-missing", "tenant": "acme"}),
    ("/text", {"schema_version": 1, "post_id": "m-text-int", "tenant": "acme", "text": 42}),
    ("/tenant", {"schema_version": 1, "post_id": "m-tenant", "tenant": "not ok!", "text": "x"}),
    ("/schema_version", {"schema_version": 2, "post_id": "m-ver", "tenant": "acme", "text": "x"}),
    (
        "/created_at",
        {"schema_version": 1, "post_id": "m-date", "tenant": "acme", "text": "x",
         "created_at": "yesterday"},
    ),
    (
        "/attributes/lang",
        {"schema_version": 1, "post_id": "m-attr", "tenant": "acme", "text": "x",
         "attributes": {"lang": 7}},
    ),
]  # fmt: skip


def malformed(count: int) -> list[tuple[str, bytes]]:
    """``count`` malformed posts with unique ids where they have one: (bad field, raw bytes)."""
    out = []
    for i in range(count):
        field, body = MALFORMED[i % len(MALFORMED)]
        body = dict(body)
        if "post_id" in body:
            body["post_id"] = f"{body['post_id']}-{i}"
        out.append((field, encode(body)))
    return out
