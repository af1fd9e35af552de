"""Decisions and reviews as the topics carry them, built from the shipped examples."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modfleet.resources import topics_dir

CATEGORIES = ("harassment", "hate", "scam", "self_harm", "sexual", "violence")
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64
REVIEWER = hashlib.sha256(b"reviewer-1").hexdigest()


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((topics_dir() / "examples" / f"{name}.v1.json").read_text())
    return loaded


def decision_id(post_id: str, digest: str = DIGEST_A, tenant: str = "acme") -> str:
    material = f"{post_id}\x1fdefault\x1f1\x1f{digest}\x1f{tenant}"
    return hashlib.sha256(material.encode()).hexdigest()


def decision(
    post_id: str,
    action: str = "allow",
    labels: tuple[str, ...] = (),
    *,
    tenant: str = "acme",
    digest: str = DIGEST_A,
    model: str = "modfleet-embedded",
    stage: str | None = "embedded",
) -> dict[str, Any]:
    d = _example("decision")
    d.update(
        decision_id=decision_id(post_id, digest, tenant),
        post_id=post_id,
        tenant=tenant,
        action=action,
        labels=list(labels),
        scores={c: (0.9 if c in labels else 0.05) for c in CATEGORIES},
        policy_id="default",
        policy_version="1",
        policy_digest=digest,
        model_id=model,
    )
    if stage is None:
        d.pop("stage", None)
    else:
        d["stage"] = stage
    return d


def review(
    of: dict[str, Any], action: str, verdicts: dict[str, bool] | None = None, **changes: Any
) -> dict[str, Any]:
    r = _example("review")
    r.update(
        decision_id=of["decision_id"],
        post_id=of["post_id"],
        tenant=of["tenant"],
        action=action,
        verdicts=verdicts or {},
        reviewer=REVIEWER,
    )
    r.update(changes)
    return r
