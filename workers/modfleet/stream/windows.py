"""The texts a batch's misses are asked as: each text, or each window of a text over its pack's
limit under a key of its own; and their verdicts folded back to one a text (its worst)."""

from __future__ import annotations

from collections.abc import Sequence

from modfleet.inference.windows import worst
from modfleet.normalise import windows
from modfleet.policy import Policy
from modfleet.policy.model import Limits
from modfleet.stream.infer import Results

# Between a cache key and its window's number: a key is a head and a hex digest, never this.
_PART = "\x1fwindow="


class Windows:
    def __init__(self, keys: Sequence[str], texts: Sequence[str], limits: Limits) -> None:
        max_chars = limits.max_text_chars
        self.keys, self.texts = list(keys), list(texts)
        self._parts: dict[str, list[str]] = {}
        if all(len(text) <= max_chars for text in texts):
            return  # most batches: every text is its own window
        self.keys, self.texts = [], []
        for key, text in zip(keys, texts, strict=True):
            parts = windows(text, max_chars)
            if len(parts) == 1:
                named = [key]
            else:
                named = self._parts[key] = [f"{key}{_PART}{n}" for n in range(len(parts))]
            self.keys += named
            self.texts += parts

    @property
    def extra(self) -> int:
        """Texts asked beyond one a text: the model calls the long ones cost."""
        return sum(len(named) - 1 for named in self._parts.values())

    def fold(self, results: Results, policy: Policy) -> Results:
        """One verdict, or one reason inference gave up, a text: a window given up on gives up
        its text, as a post read in part is never decided on the rest."""
        if not self._parts:
            return results
        found, failed = dict(results.found), dict(results.failed)
        for key, named in self._parts.items():
            verdicts = [found.pop(name, None) for name in named]
            why = [failed.pop(name) for name in named if name in failed]
            if why or None in verdicts:
                failed[key] = f"part of the text: {why[0] if why else 'no verdict'}"
                continue
            try:
                found[key] = worst([v for v in verdicts if v is not None], policy)
            except Exception as exc:  # noqa: BLE001 - one post's garbled scores cost that post
                failed[key] = f"{type(exc).__name__}: {exc}"
        return Results(found, failed)
