"""One verdict for a text the model read in windows (``normalise.windows``): its worst."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from modfleet.inference.base import Verdict

if TYPE_CHECKING:
    from modfleet.policy import Policy


def worst(verdicts: Sequence[Verdict], policy: Policy) -> Verdict:
    """The verdict of a text whose windows got ``verdicts``: each label and category at its
    highest, with the rationale, stage and extras of the window that scored highest. A window
    the model could not read, or could not be asked about, makes the whole text so, as an
    unread part of a post must never count as "allow"; a window cut to the model's context
    makes the whole text cut."""
    if len(verdicts) == 1:
        return verdicts[0]
    cut = any(v.cut for v in verdicts)
    for at, verdict in enumerate(verdicts):
        if verdict.unparseable:
            said = verdict.rationale or "unreadable"
            why = f"part {at + 1} of {len(verdicts)} of the text: {said}"
            return replace(verdict, rationale=why, cut=cut, checked=None)
        if verdict.model_down:
            return replace(verdict, cut=cut, checked=None)
    mapped = [v.policy_scores(policy) for v in verdicts]
    top = max(range(len(verdicts)), key=lambda at: max(mapped[at].values(), default=0.0))
    labels: dict[str, float] = {}
    for verdict in verdicts:
        for label, score in verdict.scores.items():
            if score > labels.get(label, -1.0):
                labels[label] = score
    categories: dict[str, float] | None = None
    if any(v.categories is not None for v in verdicts):
        # A cascade's windows may be decided by either stage: the categories each was decided on.
        categories = {}
        for scores in mapped:
            for name, score in scores.items():
                categories[name] = max(score, categories.get(name, 0.0))
    return replace(verdicts[top], scores=labels, categories=categories, cut=cut, checked=None)
