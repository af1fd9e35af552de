"""The interface every inference backend implements."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modfleet.policy import Policy


@dataclass(frozen=True, slots=True)
class Verdict:
    """A model's opinion of one text: scores by the model's own labels, 0..1."""

    scores: Mapping[str, float]
    rationale: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"scores": dict(self.scores), "rationale": self.rationale}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        scores = {str(k): float(v) for k, v in data["scores"].items()}
        rationale = data.get("rationale")
        return cls(scores=scores, rationale=None if rationale is None else str(rationale))


class Classifier(abc.ABC):
    """Scores batches of texts under a policy.

    Implementations raise ``RecoverableError`` for what a retry may fix (timeouts, a busy or
    restarting server) and ``FatalError`` for what it will not (bad configuration, a missing
    model). Anything else is treated as recoverable once, then isolates the failing post.
    """

    #: Identifies the model in decisions and in cache keys; change it when the weights change.
    model_id: str

    @abc.abstractmethod
    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        """One verdict per text, in order."""

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections or engines."""
