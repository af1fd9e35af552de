"""The interface every inference backend implements."""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any

from modfleet.carrier import carrier
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
            scores = {
                name: round(float(score), SCORE_PLACES) for name, score in self.categories.items()
            }
        else:
            scores = policy.category_scores(self.scores)
        # Kept for the next reader under the same pack (deciding, then sealing for the cache).
        object.__setattr__(self, "checked", (digest, scores))
        return scores


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
