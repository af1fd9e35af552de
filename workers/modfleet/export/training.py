"""Rows of the training export, one decision at a time (pure: no broker, no files).

Three layouts: rows for `modfleet model train` (a yes/no field per category; reviewer labels
first, the LLM tier's verdicts where no reviewer looked, which distils the large judge into the
embedded model); SFT rows for an LLM judge in the chat layout open trainers read (``messages``:
the policy as the system prompt, the post, the verdict); preference rows (``prompt``, ``chosen``:
the reviewer's verdict, ``rejected``: the model's, only where the reviewer overturned it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

Message = Mapping[str, Any]
EMBEDDED_PREFIX = "modfleet-embedded"  # the embedded model's id; its own verdicts teach nothing


@dataclass(frozen=True)
class Filters:
    """Which decisions to export. Empty tenants/packs: all. Opted-out tenants: never."""

    tenants: frozenset[str] = frozenset()
    packs: tuple[str, ...] = ()  # policy_id, policy_id@version, or a digest prefix
    opted_out: frozenset[str] = frozenset()

    @classmethod
    def build(cls, tenants: Iterable[str], packs: Iterable[str], opted_out: str) -> Filters:
        names = frozenset(t.strip() for t in opted_out.split(",") if t.strip())
        return cls(frozenset(tenants), tuple(packs), names)

    def wants(self, decision: Message) -> bool:
        tenant = decision["tenant"]
        if tenant in self.opted_out or (self.tenants and tenant not in self.tenants):
            return False
        return not self.packs or any(_is_pack(decision, pack) for pack in self.packs)


def _is_pack(decision: Message, pack: str) -> bool:
    policy = decision["policy_id"]
    digest = decision.get("policy_digest") or ""
    named = pack in (policy, f"{policy}@{decision['policy_version']}")
    return named or (len(pack) >= 8 and digest.startswith(pack))


def is_llm_verdict(decision: Message) -> bool:
    """Decided by the LLM tier: a cascade's llm stage, or a backend that is not the embedded
    model alone."""
    stage = decision.get("stage")
    if stage is not None:
        return bool(stage == "llm")
    return not str(decision["model_id"]).startswith(EMBEDDED_PREFIX)


@dataclass(frozen=True)
class Labelled:
    """One decision's labels and where they came from."""

    source: str  # reviewer | llm
    labels: dict[str, bool | None]  # None: not judged
    verdict: dict[str, Any]  # the answer an LLM judge should give
    overturned: dict[str, Any] | None  # the model's answer, where the reviewer overturned it


def labelled(decision: Message, review: Message | None) -> Labelled | None:
    """Reviewer labels first; else the LLM tier's verdict; else nothing to learn from."""
    categories = sorted(decision["scores"])
    model_verdict = _verdict(decision["action"], decision["labels"])
    if review is not None:
        verdicts: Mapping[str, bool] = review["verdicts"]
        # A reviewer who allowed the post judged every category it lacks: none applies.
        unjudged = False if review["action"] == "allow" else None
        labels = {c: verdicts.get(c, unjudged) for c in categories}
        chosen = _verdict(review["action"], [c for c in categories if labels[c]])
        upheld = _upheld(decision["action"], review["action"])
        return Labelled("reviewer", labels, chosen, None if upheld else model_verdict)
    if is_llm_verdict(decision):
        flagged = set(decision["labels"])
        return Labelled("llm", {c: c in flagged for c in categories}, model_verdict, None)
    return None


def _upheld(decided: str, reviewed: str) -> bool:
    return reviewed != "allow" if decided == "escalate" else reviewed == decided


def _verdict(action: str, violates: Iterable[str]) -> dict[str, Any]:
    return {"action": action, "violates": sorted(violates)}


def trainer_row(decision: Message, found: Labelled, text: str) -> dict[str, Any]:
    """A row `modfleet model train --data` reads: text, a field per category (empty: unknown)."""
    row: dict[str, Any] = {"text": text}
    row |= {c: ("" if v is None else v) for c, v in found.labels.items()}
    row |= {
        "label_source": found.source,
        # The large judge's scores, for a trainer that distils soft targets.
        "scores": dict(decision["scores"]) if found.source == "llm" else None,
        "post_id": decision["post_id"],  # no group: the trainer splits by text, duplicates together
        "tenant": decision["tenant"],
        "policy_digest": decision.get("policy_digest"),
        "decision_id": decision["decision_id"],
    }
    return row


def sft_row(prompt: str, text: str, found: Labelled) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": text},
            {"role": "assistant", "content": _answer(found.verdict)},
        ],
        "label_source": found.source,
    }


def preference_row(prompt: str, text: str, found: Labelled) -> dict[str, Any] | None:
    if found.overturned is None:
        return None
    return {
        "prompt": [{"role": "system", "content": prompt}, {"role": "user", "content": text}],
        "chosen": [{"role": "assistant", "content": _answer(found.verdict)}],
        "rejected": [{"role": "assistant", "content": _answer(found.overturned)}],
    }


def _answer(verdict: Mapping[str, Any]) -> str:
    return orjson.dumps(verdict, option=orjson.OPT_SORT_KEYS).decode()
