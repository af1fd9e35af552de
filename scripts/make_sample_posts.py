"""Writes workers/modfleet/stack/sample_posts.jsonl, the embedded stack's replay sample.

Deterministic (fixed seed) and synthetic: every text is composed here from the fragments
below, so the sample carries no third party's data. About 20% of the posts repeat an
earlier text (as copypasta and spam waves do) and 1% of the lines are malformed on purpose.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "workers/modfleet/stack/sample_posts.jsonl"
TOTAL = 2000

OPENERS = ["honestly", "ok so", "lol", "wow", "just saying,", "update:", "hey all,", "psa:", "",
           "not gonna lie,", "fun fact:", "reminder:", "ugh", "tbh", "so"]
BENIGN = [
    "the new bridge downtown finally opened and traffic is way better",
    "my sourdough starter survived the week, bread tonight",
    "anyone know a good trail for a beginner hike near the lake",
    "the match last night went to penalties, what a finish",
    "our team shipped the release two days early",
    "the library extended its weekend hours for exam season",
    "that documentary about octopuses was fascinating",
    "I finally fixed the squeaky door hinge with some oil",
    "the farmers market has amazing peaches this week",
    "can someone recommend a podcast about history",
    "my cat knocked every pen off the desk again",
    "the concert tickets sold out in ten minutes",
    "I love how quiet the city is early in the morning",
    "this recipe needs more garlic than it says",
    "the kids built a cardboard castle in the living room",
]
RUDE = [
    "you are a complete idiot and everyone knows it",
    "shut up, nobody asked for your stupid opinion",
    "what a pathetic loser, get off this site",
    "this is the dumbest take I have ever read, moron",
    "you're trash and your posts are garbage",
    "go to hell with your crap arguments",
    "what the fuck is wrong with you",
    "damn this game is hard but I love it",
    "this shit is actually hilarious",
    "people like you are disgusting vermin",
]
SPAM = [
    "click here for FREE followers!!! limited offer",
    "earn $5000 a week from home, DM me now",
    "best crypto signals, join my channel today",
]
CLOSERS = ["", "!", "...", " :)", " #weekend", " #news", " (edit: typo)", " 🙂", "?"]


def compose(rng: random.Random) -> str:
    pool = rng.choices([BENIGN, RUDE, SPAM], weights=[70, 22, 8])[0]
    body = rng.choice(pool)
    if rng.random() < 0.4:
        body = f"{body}, {rng.choice(BENIGN)}"
    return f"{rng.choice(OPENERS)} {body}{rng.choice(CLOSERS)}".strip()


def malformed(rng: random.Random, i: int) -> str:
    kind = (i // 100) % 4
    if kind == 0:
        return '{"schema_version": 1, "post_id": "broken-%d", "tenant": "demo"' % i
    if kind == 1:
        return json.dumps({"schema_version": 1, "post_id": f"sample-{i}", "tenant": "demo"})
    if kind == 2:
        return json.dumps({"schema_version": 1, "post_id": f"sample-{i}", "tenant": "demo",
                           "text": 42})
    return json.dumps({"schema_version": 1, "post_id": f"sample-{i}", "tenant": "no spaces!",
                       "text": "hello"})


def main() -> None:
    rng = random.Random(20261123)
    seen: list[str] = []
    lines = []
    for i in range(TOTAL):
        if i % 100 == 99:
            lines.append(malformed(rng, i))
            continue
        text = rng.choice(seen) if seen and rng.random() < 0.2 else compose(rng)
        seen.append(text)
        post = {"schema_version": 1, "post_id": f"sample-{i}", "tenant": rng.choice(["demo", "acme"]),
                "text": text, "created_at": "2026-11-23T12:00:00Z"}
        lines.append(json.dumps(post, ensure_ascii=False))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines to {OUT}")


if __name__ == "__main__":
    main()
