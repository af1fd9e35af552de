"""The interface every inference backend implements."""

from __future__ import annotations

import abc
import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any

from modfleet.carrier import carrier
from modfleet.contracts.fields import problem
from modfleet.normalise import writable
from modfleet.policy.model import SCORE_PLACES

if TYPE_CHECKING:
    from modfleet.policy import Policy


@carrier  # read-only (mypy); built for every post scored or read from the cache
class Verdict:
    """A model's opinion of one text: scores by the model's own labels, 0..1.

    ``categories`` holds scores already in the policy's category space, for models that read the
    policy (the LLM tier); when set, it is what the policy decides on, because a category that no
    model label maps to (``model_labels: []``) can only be scored that way.
    ``unparseable`` marks a model answer that could not be read: it must never count as "allow",
    so the pipeline escalates it with ``raw_output`` for the reviewer, and it is never cached.
    ``stage`` names the cascade stage that decided (``embedded`` or ``llm``), when there was one.
    """

    scores: Mapping[str, float]
    rationale: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    categories: Mapping[str, float] | None = None
    stage: str | None = None
    unparseable: bool = False
    raw_output: str | None = None
    # Set when the pack's own model was down: the model that scored instead (its
    # ``on_model_down: fallback``), or ``model_down`` when no model scored (``escalate``).
    model_id: str | None = None
    fallback_from: str | None = None
    model_down: bool = False
    # Set when the model refused the post's text (over its context: emoji and rare scripts
    # cost several tokens a character) and scored its first part instead: the decision says
    # it was truncated, and such a verdict is not cached.
    cut: bool = False
    # (pack digest, its category scores): the last pack's scores, kept by policy_scores (and
    # by the cache, whose entries hold them), so that deciding and sealing map the scores
    # once. Not part of the verdict's value.
    checked: tuple[str, dict[str, float]] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def unreadable(cls, raw_output: str, why: str) -> Verdict:
        """An answer that did not parse; ``why`` goes to the reviewer as the rationale."""
        return cls(scores={}, rationale=why, unparseable=True, raw_output=raw_output)

    def policy_scores(self, policy: Policy) -> dict[str, float]:
        """Scores by policy category: the model's own when it read the policy, else mapped;
        to the pack's decimal places either way."""
        digest = policy.digest
        checked = self.checked
        if checked is not None and checked[0] == digest:
            return checked[1]
        if self.categories is not None:
            # Clamped as category_scores clamps the mapped ones: decisions carry 0..1.
            scores = {
                name: round(_unit(score, name), SCORE_PLACES)
                for name, score in self.categories.items()
            }
        else:
            scores = policy.category_scores(self.scores)
        # Kept for the next reader under the same pack (deciding, then sealing for the cache).
        object.__setattr__(self, "checked", (digest, scores))
        return scores


def _unit(score: float, name: str) -> float:
    value = float(score)
    if value != value:  # compares false with every threshold: it would quietly "allow"
        # contract_checked turns such a verdict into an unreadable one first; should one come
        # another way, it costs its own post (dead-lettered), not the worker.
        raise ValueError(f"score for {name!r} is NaN")
    return 1.0 if value > 1.0 else 0.0 if value < 0.0 else value


def contract_checked(verdict: Verdict, known: Collection[str]) -> Verdict:
    """The verdict a backend reported, or an unreadable one in its place when what it
    reported cannot be decided on or written: a category the pack (``known``) does not have, a
    category score that is not a number (NaN, infinite), or a stage or model name decision.v1
    refuses (a plugin's, say). Such an answer is garbled, as one that does not parse is: a
    person reviews the post, and the value the schema refuses is not written. Text that is not
    Unicode text (a lone surrogate a server's JSON escaped) has that part replaced."""
    if verdict.rationale is not None or verdict.raw_output is not None:
        verdict = _as_text(verdict)
    categories = verdict.categories
    stage, model_id, fallback_from = verdict.stage, verdict.model_id, verdict.fallback_from
    if categories is None and stage is None and model_id is None and fallback_from is None:
        return verdict  # most verdicts: nothing of the backend's own to check
    why: list[str] = []
    if categories is not None:
        why += [
            f"category {name!r} scored {score!r}, not a number from 0 to 1"
            if name in known
            else f"category {name!r} is not one of the pack's"
            for name, score in categories.items()
            if name not in known or not math.isfinite(score)
        ]
    if stage is not None and (found := problem("stage", stage)) is not None:
        why.append(f"the stage it reported {found}")
        stage = None
    named = [("model_id", model_id), ("fallback_from", fallback_from)]
    bad = [
        f"the {name} it reported {found}"
        for name, value in named
        if value is not None and (found := problem(name, value)) is not None
    ]
    if bad:
        why += bad
        model_id = fallback_from = None  # one names the other: neither is written alone
    if not why:
        return verdict
    shown = verdict.raw_output
    if shown is None and categories is not None:
        shown = repr(dict(categories))
    said = f"\n\nModel's rationale: {verdict.rationale}" if verdict.rationale else ""
    return replace(
        verdict,
        scores={},
        categories=None,
        unparseable=True,
        rationale="the model's answer cannot be used: " + "; ".join(why) + said,
        raw_output=shown,
        stage=stage,
        model_id=model_id,
        fallback_from=fallback_from,
        checked=None,
    )


def _as_text(verdict: Verdict) -> Verdict:
    """``verdict`` with its rationale and raw output writable as UTF-8 (orjson refuses a lone
    surrogate, and the post would fail as modfleet's error, reviewed by no one)."""
    rationale, raw = _text(verdict.rationale), _text(verdict.raw_output)
    if rationale is verdict.rationale and raw is verdict.raw_output:
        return verdict
    return replace(verdict, rationale=rationale, raw_output=raw)


def _text(value: str | None) -> str | None:
    return None if value is None else writable(value)


class Classifier(abc.ABC):
    """Scores batches of texts under a policy.

    Implementations raise ``RecoverableError`` for what a retry may fix (timeouts, a busy or
    restarting server) and ``FatalError`` for what it will not (bad configuration, a missing
    model). Anything else is treated as recoverable once, then isolates the failing post.
    """

    #: Identifies the model in decisions and in cache keys; change it when the weights change.
    model_id: str
    #: Whether requests for different posts share state a poster could time, such as a model
    #: server's prefix cache: if so, each tenant's posts are asked apart, under that tenant's
    #: audience (``pack_salt``). True unless a backend knows better: a plugin may be a server.
    cross_post_cache: bool = True

    def cache_scope(self) -> str:
        """What a verdict depends on besides the pack and the text: the model and, for backends
        that frame the pack as a prompt, the adapter and its prompt-template version."""
        adapter = getattr(self, "adapter", None)
        if adapter is None:
            return self.model_id
        version = getattr(adapter, "template_version", "1")
        return f"{self.model_id}|adapter={adapter.name}|template={version}"

    @abc.abstractmethod
    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        """One verdict per text, in order."""

    def check_pack(self, policy: Policy) -> None:
        """``FatalError`` when this backend cannot score ``policy``: asked when a pack is
        loaded or reloaded, so that such a pack is refused there, never found out on a post."""
        adapter = getattr(self, "adapter", None)
        if adapter is not None:
            adapter.check(policy)

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections or engines."""


def pack_salt(base: str | None, policy: Policy) -> str:
    """vLLM ``cache_salt`` for one pack's requests: prefix-cache blocks are shared only among
    requests under the same pack (and the deployment's own salt, if any), so a tenant with a
    pack of its own never reuses, or times, the blocks of another tenant's posts. The pack's
    tenants count as well as its digest (which leaves them out): a tenant's own copy of the
    default pack is still its own."""
    material = f"{base or ''}\x1f{policy.digest}{audience(policy)}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def audience(policy: Policy) -> str:
    """Whose posts a pack decides, for what is shared by pack (prefix-cache salt, verdict
    cache): empty for a pack of no tenant in particular, so that its keys stay as they were."""
    if not policy.tenants:
        return ""
    return "\x1ftenants=" + ",".join(sorted(policy.tenants))
