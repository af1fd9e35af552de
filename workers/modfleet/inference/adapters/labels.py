"""A pack's ``model_labels`` against the labels a model emits: refused at load when misspelt.

``Policy.category_scores`` reads a label the model never reports as "not scored", so a misspelt
label (``modfleet:harrasment``, ``qwen3guard:Violence``) would leave its category unscored and
every post allowed on it, with nothing said. Each model checks the labels of its own namespace;
labels of another model of the fleet are left to that model (a cascade's LLM, a fallback), and a
label that no model of the fleet emits is refused by every check.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from modfleet.errors import FatalError

if TYPE_CHECKING:
    from modfleet.policy import Policy

# Every namespace this fleet's models label their scores with: the embedded model's heads, the
# Qwen3Guard and Llama Guard (MLCommons taxonomy) adapters, gpt-oss-safeguard's one score.
PREFIXES = ("modfleet:", "qwen3guard:", "llama-guard:", "gpt-oss-safeguard:")
BARE = ("offensive",)  # alt-profanity-check's one label, without a namespace

Loc = tuple[str | int, ...]


class UnknownLabels(FatalError):
    """Labels of a pack that its model does not emit; ``problems`` holds (field path, message)
    pairs, the path as the loader's ``Problem`` spells it, so that a caller holding the pack's
    file can point at each label's line."""

    def __init__(self, policy: Policy, model: str, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        listing = "\n".join(f"  {dotted(loc)}: {message}" for loc, message in problems)
        super().__init__(
            f"pack {policy.label}: {len(problems)} model label(s) that {model} does not emit "
            f"(its categories would never be scored, and their posts allowed):\n{listing}"
        )


def check_labels(
    policy: Policy, model: str, emitted: Collection[str], owns: Callable[[str], bool]
) -> None:
    """``UnknownLabels`` for each label ``owns`` claims for this model that is not one of
    ``emitted``, and for each label in no namespace of the fleet."""
    problems: list[tuple[Loc, str]] = []
    for name, category in policy.categories.items():
        for i, label in enumerate(category.model_labels):
            if label in emitted:
                continue
            if owns(label):
                why = f"{label!r} is not a label of {model}"
            elif not known_elsewhere(label):
                why = f"{label!r} is a label no model of this fleet emits"
            else:
                continue
            problems.append((("categories", name, "model_labels", i), _hinted(why, label, emitted)))
    if problems:
        raise UnknownLabels(policy, model, problems)


def known_elsewhere(label: str) -> bool:
    """Whether ``label`` is in a namespace some model of the fleet emits (it may still be
    misspelt: that model's own check says so)."""
    return label in BARE or label.startswith(PREFIXES)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def _hinted(why: str, label: str, emitted: Collection[str]) -> str:
    # Compared without case: "modfleet:Harassment" is as close to its label as a typo.
    by_lower = {e.lower(): e for e in emitted}
    close = difflib.get_close_matches(label.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
    return f"{why}{hint} It emits: {', '.join(emitted)}"
