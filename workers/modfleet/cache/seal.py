"""Sealed verdicts: what a worker wrote is the only thing another worker will trust.

Anyone who can write to Redis could otherwise decide posts: ``{"scores": {"offensive": 0}}``
under an abusive text's key would get it allowed. Each entry is therefore stored as a MAC of
key and payload in hex, a ``.``, then the payload. The MAC is keyed BLAKE2b (RFC 7693: a MAC by
design, half the cost of HMAC-SHA256 on entries this short, and every cache hit pays it).
Binding the key means an honest entry copied under another text's key fails the check too.
The key names the pack's digest, so an entry that passes was written for this pack's content;
its numbers are still looked at (a finite score per category the pack has), so that a
writer's bug costs a miss, never a wrong decision.
"""

from __future__ import annotations

import hashlib
import hmac
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import orjson

from modfleet.carrier import carrier
from modfleet.inference.base import Verdict

if TYPE_CHECKING:
    from modfleet.policy import Policy

# Why an entry in Redis was not used; each is a label of modfleet_cache_rejected_total.
Rejected = Literal["unsealed", "bad_seal", "unreadable", "shape"]
REJECTED_REASONS: tuple[Rejected, ...] = ("unsealed", "bad_seal", "unreadable", "shape")

_MAC_HEX = 64  # a sealed entry: its MAC in hex, _SEPARATOR, its payload
_SEPARATOR = b"."
_MAX_KEY = 64  # bytes of a BLAKE2b key
_PERSON = b"modfleet.verdict"  # BLAKE2b's personalisation: this MAC is for cache entries only
_NO_SCORES: MappingProxyType[str, float] = MappingProxyType({})  # shared: verdicts are read-only


@carrier
class Opened:
    """An entry that passed its seal and fits the pack, or why it did not."""

    verdict: Verdict | None
    rejected: Rejected | None = None
    detail: str = ""


class KeyedMac:
    """Keyed BLAKE2b of a key and a payload, in hex, with the fleet's secret. ``person``
    names what it seals, so that a MAC made for one use never passes for another's."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes, person: bytes) -> None:
        # BLAKE2b takes keys of up to 64 bytes; a longer secret is hashed down, as HMAC does.
        key = secret if len(secret) <= _MAX_KEY else hashlib.blake2b(secret).digest()
        # Keyed once: a keyed BLAKE2b starts by compressing a block of its key, and every
        # entry read or written would pay that again; a copy of this state does not.
        self._keyed = hashlib.blake2b(digest_size=32, key=key, person=person)

    def of(self, key: str, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(key.encode("utf-8", "surrogatepass") + b"\n" + payload)
        return mac.hexdigest().encode("ascii")

    def seal(self, key: str, payload: bytes) -> bytes:
        """``payload`` as an entry stored under ``key``: its MAC, a separator, the payload."""
        return self.of(key, payload) + _SEPARATOR + payload

    def open(self, key: str, raw: bytes | str) -> bytes | Literal["unsealed", "bad_seal"]:
        """The payload of an entry :meth:`seal` made for ``key``, or why ``raw`` is not one."""
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        mac, sep, payload = data.partition(_SEPARATOR)
        if not sep or len(mac) != _MAC_HEX:
            return "unsealed"
        if not hmac.compare_digest(mac, self.of(key, payload)):
            return "bad_seal"
        return payload


class Sealer:
    """Seals and opens cache entries with one fleet-wide secret.

    An entry holds the verdict as its pack decides on it: the pack's category scores, the
    rationale and the cascade stage. The key names the pack's digest, the backend and the
    entry format (which names how model scores map to categories), so a worker that reads an
    entry it can open reads what a worker of its own kind wrote for this very pack and model,
    and needs no mapping of its own: the read is a MAC, a parse and a look at the numbers.
    """

    def __init__(self, secret: bytes) -> None:
        self._keyed = KeyedMac(secret, _PERSON)

    def seal(self, key: str, verdict: Verdict, policy: Policy) -> bytes:
        body = {
            "categories": verdict.policy_scores(policy),
            "rationale": verdict.rationale,
            "stage": verdict.stage,
        }
        return self._keyed.seal(key, orjson.dumps(body))

    def open(self, key: str, raw: bytes | str, policy: Policy) -> Opened:
        read = self.read(key, raw, policy)
        return Opened(read) if isinstance(read, Verdict) else read

    def read(self, key: str, raw: bytes | str, policy: Policy) -> Verdict | Opened:
        """:meth:`open` for the cache's read path: the verdict itself when the entry passes
        (every hit comes this way), an :class:`Opened` saying why when it does not."""
        payload = self._keyed.open(key, raw)
        if payload == "unsealed":
            return Opened(None, "unsealed", "no seal")
        if payload == "bad_seal":
            return Opened(None, "bad_seal", "the seal does not match the entry and its key")
        try:
            body = orjson.loads(payload)
            categories, rationale, stage = body["categories"], body["rationale"], body["stage"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return Opened(None, "unreadable", f"{type(exc).__name__}")
        problem, scores = _fit(categories, rationale, stage, policy)
        if problem:
            return Opened(None, "shape", problem)
        # The scores are the pack's own, checked: deciding takes them as they are. Positional
        # and with shared empty mappings, as every cache hit builds one.
        checked = (policy.digest, scores)
        return Verdict(_NO_SCORES, rationale, _NO_SCORES, scores, stage, checked=checked)


def _fit(
    categories: object, rationale: object, stage: object, policy: Policy
) -> tuple[str, dict[str, float]]:
    """Why the entry cannot be decided under ``policy`` (empty when it fits), and its scores.

    Only a writer holding the secret gets this far; this guards against a bug in one (or an
    older format under a reused key), so that a sealed entry is still decided as a number per
    known category, or classified again."""
    if type(categories) is not dict:
        return f"categories: {type(categories).__name__}, not an object", {}
    if not (rationale is None or type(rationale) is str) or not (
        stage is None or type(stage) is str
    ):
        return "rationale and stage must be strings or null", {}
    known = policy.categories
    for name, score in categories.items():
        if name not in known:
            unknown = sorted(str(n) for n in categories if n not in known)
            return f"categories the pack does not have: {unknown}", {}
        # Our writer writes floats only; the test passes every finite one (inf - inf and
        # NaN - NaN are NaN), and anything else is a writer's bug: classified again.
        if type(score) is not float or score - score != 0.0:
            return f"score {score!r} of {name!r} is not a finite number", {}
    return "", categories
