"""Sealed verdicts: what a worker wrote is the only thing another worker will trust.

Anyone who can write to Redis could otherwise decide posts: ``{"scores": {"offensive": 0}}``
under an abusive text's key would get it allowed. Each entry is therefore stored as
``HMAC-SHA256(secret, key + payload)`` in hex, a ``.``, then the payload. Binding the key means
an honest entry copied under another text's key fails the check too. An entry that passes is
still checked against the pack it is about to be decided under, because a sealed entry can only
vouch for what was written, not for what the pack now expects.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import orjson

from modfleet.carrier import carrier
from modfleet.inference.base import Verdict

if TYPE_CHECKING:
    from modfleet.policy import Policy

# Why an entry in Redis was not used; each is a label of modfleet_cache_rejected_total.
Rejected = Literal["unsealed", "bad_seal", "unreadable", "shape"]
REJECTED_REASONS: tuple[Rejected, ...] = ("unsealed", "bad_seal", "unreadable", "shape")

_MAC_HEX = 64
_SEPARATOR = b"."


@carrier
class Opened:
    """An entry that passed its seal and fits the pack, or why it did not."""

    verdict: Verdict | None
    rejected: Rejected | None = None
    detail: str = ""


class Sealer:
    """Seals and opens cache entries with one fleet-wide secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def seal(self, key: str, verdict: Verdict, policy: Policy) -> bytes:
        # ``scored`` records which of the pack's categories the verdict scored when it was new;
        # a reader whose interpretation differs (a missing or extra category) treats it as a miss.
        body = {"verdict": verdict.to_json(), "scored": sorted(verdict.policy_scores(policy))}
        payload = orjson.dumps(body)
        return self._mac(key, payload) + _SEPARATOR + payload

    def open(self, key: str, raw: bytes | str, policy: Policy) -> Opened:
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        mac, sep, payload = data.partition(_SEPARATOR)
        if not sep or len(mac) != _MAC_HEX:
            return Opened(None, "unsealed", "no seal")
        if not hmac.compare_digest(mac, self._mac(key, payload)):
            return Opened(None, "bad_seal", "the seal does not match the entry and its key")
        try:
            body = orjson.loads(payload)
            verdict = Verdict.from_json(body["verdict"])
            # Names other than strings never equal the pack's: a mismatch, reported as "shape".
            scored = set(body["scored"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return Opened(None, "unreadable", f"{type(exc).__name__}")
        problem, scores = _fit(verdict, scored, policy)
        if problem:
            return Opened(None, "shape", problem)
        # The verdict is new and ours alone here: record the scores the check worked out.
        object.__setattr__(verdict, "checked", (policy.digest, scores))
        return Opened(verdict)

    def _mac(self, key: str, payload: bytes) -> bytes:
        material = key.encode("utf-8", "surrogatepass") + b"\n" + payload
        return hmac.digest(self._secret, material, "sha256").hex().encode("ascii")


def _fit(verdict: Verdict, scored: set[str], policy: Policy) -> tuple[str, dict[str, float]]:
    """Why ``verdict`` cannot be decided under ``policy`` (empty when it fits), and its scores
    by the pack's categories, worked out once for the check and for deciding."""
    bad = _not_finite(verdict.scores)
    if bad:
        return f"scores: {bad}", {}
    categories = policy.categories
    if verdict.categories:
        bad = _not_finite(verdict.categories)
        if bad:
            return f"categories: {bad}", {}
        unknown = sorted(name for name in verdict.categories if name not in categories)
        if unknown:
            return f"categories the pack does not have: {unknown}", {}
    now = verdict.policy_scores(policy)
    if now.keys() != scored or not scored <= categories.keys():
        # str(): a sealed but odd entry may name categories by numbers; its reason must not fail.
        missing = sorted(str(name) for name in scored - now.keys())
        extra = sorted(now.keys() - scored)
        why = f"scored categories changed since it was written: missing {missing}, extra {extra}"
        return why, {}
    return "", now


def _not_finite(scores: Mapping[str, Any]) -> str:
    for name, score in scores.items():
        # The first test passes every finite float quickly (inf - inf and NaN - NaN are NaN).
        if type(score) is float and score - score == 0.0:
            continue
        if not isinstance(score, float | int) or not math.isfinite(score):
            return f"score {score!r} of {name!r} is not a finite number"
    return ""
