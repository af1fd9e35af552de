"""The CPU tier: the project's own model (a head per policy category), and alt-profanity-check.

Both run anywhere without a download. The project's model ships inside the wheel
(``modfleet/model/default``, trained by ``modfleet model train``) and reports one score per
category, labelled ``modfleet:<category>``. alt-profanity-check reports one score,
``offensive``, and stays selectable: a pack picks a model by the labels its categories map to
(``model_labels``), and only the models a pack names are run for its posts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from modfleet.errors import FatalError
from modfleet.inference.adapters.labels import check_labels
from modfleet.inference.base import Classifier, Verdict
from modfleet.model.artifact import LABEL_PREFIX, EmbeddedModel, load
from modfleet.model.features import READING_ID
from modfleet.model.readings import second_reading
from modfleet.model.runs import Runs, runs_for

if TYPE_CHECKING:
    from modfleet.policy import Policy
    from modfleet.policy.text import Glossary

LABEL = "offensive"  # alt-profanity-check's one label
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "model" / "default"

Scorer = Callable[[list[str]], list[dict[str, float]]]
# Characters scored on the event loop rather than in a thread: about 50 ms of scoring on this
# machine (~0.8 us a character), well inside the heartbeat and health-check intervals. Bounded by
# characters, not texts: a batch of posts at the length limit scores for seconds.
_INLINE_CHARS = 65_536
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def pinned_model_dir(models_dir: Path | None, model_id: str) -> Path:
    """The folder of a pack's ``model.id: modfleet-embedded@VERSION``: ``models_dir/VERSION``.

    How a retrained model runs beside the shipped one (a shadow pack, same policy, new model).
    The version names a folder, so it is held to a plain name: no path can be smuggled in."""
    _, _, version = model_id.partition("@")
    if not _VERSION.match(version):
        raise FatalError(f"embedded model {model_id!r}: {version!r} is not a plain version name")
    if models_dir is None:
        raise FatalError(
            f"embedded model {model_id!r} needs MODFLEET_EMBEDDED_MODELS_DIR (its models' folder)"
        )
    folder = models_dir / version
    if not folder.is_dir():
        raise FatalError(f"embedded model {model_id!r}: no folder {folder}")
    return folder


class EmbeddedClassifier(Classifier):
    # Each text is scored alone, in process: nothing one post leaves behind speeds another's.
    cross_post_cache = False

    def __init__(self, model_dir: Path | None = None) -> None:
        # Loaded now, not on the first post: a worker that cannot read its model must not start.
        self.model: EmbeddedModel = load(model_dir or DEFAULT_MODEL)
        self._profanity: Scorer | None = None
        version = metadata.version("alt-profanity-check")
        # Both models' versions and how a text is read (the fold table, the word view's rules,
        # the second reading's): a cached verdict is invalid when any of them changes.
        self.model_id = f"{self.model.model_id}+read-{READING_ID}+alt-profanity-check-{version}"
        self._runs = runs_for(self.model)

    def check_pack(self, policy: Policy) -> None:
        # A label neither model emits leaves its category unscored: every post allowed on it.
        # Other models' labels pass: in a cascade or as a fallback they serve the LLM.
        emitted = (*self.model.labels, LABEL)
        check_labels(policy, self.model_id, emitted, _owned)

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if not texts:
            return []
        if sum(len(text) for text in texts) <= _INLINE_CHARS:
            # On the event loop: a thread costs more than it saves here. Its Python half
            # (features) and the loop's own work take turns at the GIL, each slowing the other:
            # measured, 0%-hit CPU per post fell from 341 to 222 us and p50 latency by a third.
            scores = self._score(list(texts), _wanted(policy), policy.glossary)
            return [Verdict(scores=s) for s in scores]
        # Scoring this much would hold the loop (heartbeats, /health) too long: a thread.
        scores = await asyncio.to_thread(self._score, list(texts), _wanted(policy), policy.glossary)
        return [Verdict(scores=s) for s in scores]

    def _score(
        self, texts: list[str], wanted: tuple[bool, bool], glossary: Glossary | None
    ) -> list[dict[str, float]]:
        rows, runs = self._rows(texts, wanted), self._runs
        # A second reading (model/readings.py: marks inside a word read through, the other
        # letter of an ambiguous l33t character, words run together cut apart by model/runs.py;
        # the pack's slang read as it means): the worse of the two counts. Every label is a
        # probability of harm, so the worse is the higher, label by label.
        again = {
            at: read for at, text in enumerate(texts) if (read := _again(text, runs, glossary))
        }
        if again:
            for at, other in zip(again, self._rows(list(again.values()), wanted), strict=True):
                rows[at] = {label: max(p, other.get(label, p)) for label, p in rows[at].items()}
        return rows

    def _rows(self, texts: list[str], wanted: tuple[bool, bool]) -> list[dict[str, float]]:
        ours, profanity = wanted
        rows: list[dict[str, float]] = [{} for _ in texts]
        if ours:
            rows = self.model.scores(texts)
        if profanity:
            for row, p in zip(rows, self._profanity_scorer()(texts), strict=True):
                row |= p
        return rows

    def _profanity_scorer(self) -> Scorer:
        if self._profanity is None:
            try:
                from profanity_check import predict_prob
            except ImportError as exc:  # pragma: no cover - it is a hard dependency
                raise FatalError("alt-profanity-check is not installed") from exc
            self._profanity = lambda texts: [{LABEL: float(p)} for p in predict_prob(texts)]
        return self._profanity


def _again(text: str, runs: Runs, glossary: Glossary | None) -> str | None:
    """The second reading, with the pack's slang read as it means; None where it is the text."""
    if glossary is None:
        return second_reading(text, runs)
    read = glossary.read(second_reading(text, runs) or text)
    return read if read != text else None


def _owned(label: str) -> bool:
    # Ours are modfleet:<head> and the bare "offensive"; no other model emits a bare label.
    return label.lower().startswith(LABEL_PREFIX) or ":" not in label


def _wanted(policy: Policy) -> tuple[bool, bool]:
    """(run our model, run alt-profanity-check) for this pack's model labels.

    A pack that names neither gets our model's scores: it maps none of them, but a verdict with
    every category's score is what the cascade and the reports need to see it is unscored.
    """
    labels = {label for c in policy.categories.values() for label in c.model_labels}
    profanity = LABEL in labels
    ours = any(label.startswith(LABEL_PREFIX) for label in labels) or not profanity
    return ours, profanity
