"""``modfleet bench reject``: the worst-case cost of saying no to one hostile record.

A rejected post used to be explained by Python's jsonschema on the event loop, whose cost grows
with the post (1.3-2.0 s for a 1 MB post with 90k attributes): 256 of those block heartbeats for
minutes. The worker now checks size and shape first and explains with jsonschema-rs. This times
both paths on the same hostile records, so the before/after is measured, not claimed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from modfleet.contracts.schemas import first_violation
from modfleet.ingest.decode import Record, decode

_VALID = {"schema_version": 1, "post_id": "p", "tenant": "acme", "text": "hello"}


def hostile_records() -> dict[str, bytes]:
    """The shapes that were expensive or crashed, at the sizes a broker lets through."""
    return {
        "90k attributes (1 MB)": orjson.dumps(
            {**_VALID, "attributes": {f"k{i}": "v" for i in range(90_000)}}
        ),
        "nested 1,000 deep": orjson.dumps(_VALID)[:-1]
        + b', "attributes": {"a": '
        + b"[" * 1000
        + b"]" * 1000
        + b"}}",
        "3 MB post_id": orjson.dumps({**_VALID, "post_id": "p" * 3_000_000}),
        "200k-item text list": orjson.dumps({**_VALID, "text": ["x"] * 200_000}),
        "duplicate key, 1 MB text": b'{"schema_version": 1, "post_id": "p", "tenant": "a", "text":'
        b' "x", "text": "' + b'\\":' * 300_000 + b'"}',
    }


@dataclass(frozen=True)
class Timing:
    name: str
    before_ms: float | None  # None: the old path raised instead of answering
    after_ms: float


def _best_ms(work: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _before(value: bytes) -> object:
    """The old path: parse, then let jsonschema find and explain the violation."""
    return first_violation("post", orjson.loads(value))


def measure(rounds: int = 3) -> list[Timing]:
    out = []
    for name, value in hostile_records().items():
        record = Record("posts", 0, 0, None, None, value)
        try:
            before: float | None = _best_ms(lambda v=value: _before(v), rounds)  # type: ignore[misc]
        except RecursionError:
            before = None
        after = _best_ms(lambda r=record: decode(r), rounds)  # type: ignore[misc]
        out.append(Timing(name, before, after))
    return out


def table(timings: list[Timing]) -> str:
    lines = [
        "worst-case cost of rejecting one hostile post (best of 3, one core)",
        f"  {'record':<28} {'before (jsonschema)':>20} {'after (worker)':>16}",
    ]
    for t in timings:
        before = "RecursionError" if t.before_ms is None else f"{t.before_ms:,.1f} ms"
        lines.append(f"  {t.name:<28} {before:>20} {t.after_ms:>13,.2f} ms")
    worst = max(t.after_ms for t in timings)
    lines.append(f"  worst case after: {worst:,.2f} ms per record")
    return "\n".join(lines)
