"""What a policy pack is, and the one function that turns scores into an action.

A pack is written by Trust & Safety staff in YAML (see ``policies/README.md``); these models are
its schema. The category layout (Definition / Key Terms / VIOLATES / DOES NOT VIOLATE / Examples)
follows ROOST's gpt-oss-safeguard policy template, so the same pack both drives the thresholds of
a scoring model and, rendered by :meth:`Policy.prompt_text`, is the policy an LLM reads.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from modfleet.contracts.fields import problem
from modfleet.errors import FatalError
from modfleet.policy.prompt import policy_prompt
from modfleet.policy.text import Glossary, TextIn, glossary_errors
from modfleet.settings import TENANT_NAME

Action = Literal["allow", "label", "restrict", "escalate", "remove"]

# Order matters: when categories disagree, the most severe action wins.
SEVERITY: dict[str, int] = {
    "allow": 0,
    "label": 1,
    "restrict": 2,
    "escalate": 3,
    "remove": 4,
}

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Decimal places of a category score: what decisions carry and what the pack decides on, so
# that a decision's scores explain its action exactly (0.7999996 is not shown as 0.8 and
# allowed under a 0.8 threshold).
SCORE_PLACES = 6
# Bumped when what goes into Policy.digest changes, so that old digests never match new ones.
_DIGEST_FORMAT = "modfleet.policy-digest.v1"
# Date-like (2026.11.0) or semver-like (1.2.3), optionally with a suffix (1.2.3-rc1).
VERSION_PATTERN = r"^\d+(\.\d+){1,3}(-[0-9A-Za-z][0-9A-Za-z.-]*)?$"

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# Staff write prose in YAML block scalars, which end in a newline; strip it so the rendered
# prompt does not depend on whether `|` or `|-` was used.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Example(_Frozen):
    """A worked case that shows reviewers and the LLM where the line is."""

    text: Text
    violates: bool
    note: Text | None = None


class Threshold(_Frozen):
    """At or above ``min_score``, the category's action is ``action``."""

    min_score: float = Field(ge=0.0, le=1.0)
    action: Action

    @field_validator("action")
    @classmethod
    def _not_allow(cls, action: Action) -> Action:
        # "allow" is implied below the lowest threshold; listing it would shadow lower rows.
        if action == "allow":
            raise ValueError("'allow' is not a threshold action: it is what falls below them all")
        return action


class Category(_Frozen):
    """One kind of harm, defined for people and for models."""

    title: Text
    definition: Text
    key_terms: dict[Text, Text] = Field(default_factory=dict)
    violates: list[Text] = Field(min_length=1)
    does_not_violate: list[Text] = Field(min_length=1)
    examples: list[Example] = Field(min_length=1)
    model_labels: list[Text] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _descending(cls, thresholds: list[Threshold]) -> list[Threshold]:
        # First match wins in decide(), so an out-of-order row would never be reached.
        for i in range(1, len(thresholds)):
            above, here = thresholds[i - 1].min_score, thresholds[i].min_score
            if here >= above:
                raise ValueError(
                    "list thresholds from the highest min_score to the lowest, each lower than "
                    f"the one before: [{i}] has {here}, not below [{i - 1}] with {above}"
                )
        return thresholds


class ModelRef(_Frozen):
    """Which model serves the pack."""

    backend: Text = "embedded"
    id: Text
    reasoning_effort: Literal["low", "medium", "high"] = "low"
    # When the model is down: "wait" holds the posts until it is back (nothing is decided or
    # dead-lettered meanwhile), "fallback" decides with the ``fallback`` backend (recorded on
    # each decision), "escalate" sends every post to human review.
    on_model_down: Literal["wait", "fallback", "escalate"] = "wait"
    # A backend name, checked here: a misspelt one would be found only when the model goes down.
    fallback: Literal["embedded", "openai", "vllm", "cascade"] | None = None

    @model_validator(mode="after")
    def _fallback_named(self) -> ModelRef:
        if self.on_model_down == "fallback" and not self.fallback:
            raise ValueError("on_model_down is 'fallback' but no fallback backend is named")
        if self.fallback is not None and self.fallback == self.backend:
            raise ValueError("the fallback backend must differ from the pack's own backend")
        return self


class Limits(_Frozen):
    max_text_chars: int = Field(20_000, ge=1, le=1_000_000)
    # A longer post is read in up to this many overlapping windows of max_text_chars, and decided
    # on its worst: abuse in the middle of a long post is read. Each window is one model call.
    max_windows: int = Field(8, ge=1, le=64)


# The overall row of an evaluation: a post is flagged when the pack's action is not "allow".
FLAGGED = "flagged"

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class Gate(_Frozen):
    """The pack's regression gate, run by ``modfleet policy test``.

    ``baseline_f1`` holds the F1 measured on the golden set when the pack was last accepted, per
    category and/or ``flagged`` (any category); a change that loses more than ``tolerance`` of
    any of them fails the gate.
    """

    golden_set: Text  # relative to the pack file, so a pack and its golden set move together
    tolerance: Unit = 0.02
    baseline_f1: dict[Identifier, Unit] = Field(min_length=1)
    # A baseline is only comparable under the model that produced it; a mismatch is reported.
    model: Text | None = None


@dataclass(frozen=True)
class Judgement:
    """The pack's verdict on one post."""

    action: Action
    labels: tuple[str, ...]
    per_category: dict[str, Action]


class Policy(_Frozen):
    """A whole policy pack."""

    id: Identifier
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
    title: Text
    description: Text
    model: ModelRef
    limits: Limits = Field(default_factory=Limits)
    text: TextIn = Field(default_factory=TextIn)
    categories: dict[Identifier, Category] = Field(min_length=1)
    gate: Gate | None = None
    # live: its decisions are enforced. shadow: evaluated on the same posts, its decisions go to
    # the shadow topic only, so a candidate can be compared with live before it ships.
    mode: Literal["live", "shadow"] = "live"
    # Tenants whose posts this pack governs; empty means every tenant no other pack claims.
    tenants: list[Annotated[str, StringConstraints(pattern=f"^{TENANT_NAME.pattern}$")]] = []
    _digest: str = PrivateAttr(default="")
    # (category, its model labels) in pack order: what category_scores walks for every post.
    _label_table: tuple[tuple[str, tuple[str, ...]], ...] = PrivateAttr(default=())
    # category -> its thresholds as (min_score, action), highest first: what decide() walks.
    _thresholds: dict[str, tuple[tuple[float, Action], ...]] = PrivateAttr(default_factory=dict)
    # (scored categories, their actions) -> the Judgement: a pack has few such outcomes, and
    # most posts share one, so each is built once (Judgement is frozen, so sharing is safe).
    _judgements: dict[tuple[tuple[str, ...], tuple[Action, ...]], Judgement] = PrivateAttr(
        default_factory=dict
    )
    _glossary: Glossary | None = PrivateAttr(default=None)

    @field_validator("id", "version")
    @classmethod
    def _carried_by_decisions(cls, value: str, info: ValidationInfo) -> str:
        # Every decision and escalation carries them (policy_id, policy_version): a value their
        # schemas refuse would make every one of the pack's outputs invalid.
        found = problem("policy_id" if info.field_name == "id" else "policy_version", value)
        if found is not None:
            raise ValueError(found)
        return value

    def model_post_init(self, context: object, /) -> None:
        # Computed once at load: the pack is frozen, and every post's cache key reads it.
        self._digest = hashlib.sha256(self.canonical_content()).hexdigest()
        self._label_table = tuple(
            (name, tuple(c.model_labels)) for name, c in self.categories.items()
        )
        self._thresholds = {
            name: tuple((t.min_score, t.action) for t in c.thresholds)
            for name, c in self.categories.items()
        }
        self._judgements = {}
        self._glossary = Glossary(self.text.glossary) if self.text.glossary else None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # pydantic copies private attributes as they are: an edited copy needs its own digest.
        copy = super().model_copy(update=update, deep=deep)
        copy.model_post_init(None)
        return copy

    @property
    def digest(self) -> str:
        """Lowercase hex SHA-256 of :meth:`canonical_content`: the pack's identity by content."""
        # Straight from pydantic's private-attribute dict: every post's cache key and decision
        # id read this, and ``self._digest`` goes through BaseModel.__getattr__ each time.
        return self.__pydantic_private__["_digest"]  # type: ignore[index,no-any-return]

    @property
    def glossary(self) -> Glossary | None:
        """The pack's slang, compiled at load (``text.glossary``); None where it has none."""
        return self._glossary

    @property
    def label(self) -> str:
        """``id@version`` and the digest's first 12 digits, for logs and error messages."""
        return f"{self.id}@{self.version} ({self._digest[:12]})"

    def _private(self) -> dict[str, Any]:
        private = self.__pydantic_private__
        if private is None:  # pragma: no cover - set by model_post_init on every instance
            raise AttributeError("pack not initialised")
        return private

    def canonical_content(self) -> bytes:
        """What the model reads and what decides, in one byte string.

        The prompt an LLM reads (which carries every category's text in the pack's order), the
        thresholds and model labels that turn scores into actions, the model binding, the
        text limits and the text's format. Not the gate (golden set), mode or tenants: those
        choose where a pack applies and how it is tested, not what it decides. YAML comments
        and layout are gone by the time the pack is parsed, so they never count.
        """
        deciding = {
            name: {
                "model_labels": list(c.model_labels),
                "thresholds": [[t.min_score, t.action] for t in c.thresholds],
            }
            for name, c in self.categories.items()
        }
        content = {
            "format": _DIGEST_FORMAT,
            "prompt": self.prompt_text(),
            "categories": deciding,
            "model": self.model.model_dump(mode="json"),
            "limits": self.limits.model_dump(mode="json"),
        }
        if self.text != TextIn():
            # Absent at its default: packs written before it keep their digests (and so their
            # cached verdicts and their decisions' ids) across the upgrade.
            content["text"] = self.text.model_dump(mode="json")
        return json.dumps(
            content, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode("utf-8", "surrogatepass")

    @model_validator(mode="after")
    def _baseline_names_known(self) -> Policy:
        # A misspelt baseline name would otherwise never be checked, and the gate never fail.
        known = {FLAGGED, *self.categories}
        names = self.gate.baseline_f1 if self.gate else {}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise _unknown_baselines(type(self).__name__, unknown, sorted(known))
        return self

    @model_validator(mode="after")
    def _glossary_readable(self) -> Policy:
        errors = glossary_errors(self.text.glossary)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def category_scores(self, model_scores: Mapping[str, float]) -> dict[str, float]:
        """Each category's score: the highest of its model labels that the model reported.

        A category none of whose labels is present is left out rather than scored 0, so that
        "not judged by this model" stays distinguishable from "judged harmless". Scores are
        kept to :data:`SCORE_PLACES` places: the decision shows the numbers it was decided on.
        """
        scores: dict[str, float] = {}
        get = model_scores.get
        for name, labels in self._private()["_label_table"]:
            best: float | None = None
            for label in labels:
                found = get(label)
                if found is not None:
                    if found != found:  # NaN, inlined: this runs for every label of every post
                        _finite(found, label)
                    value = float(found)
                    best = value if best is None or value > best else best
            if best is not None:
                scores[name] = round(
                    1.0 if best > 1.0 else 0.0 if best < 0.0 else best, SCORE_PLACES
                )
        return scores

    def decide(self, category_scores: Mapping[str, float]) -> Judgement:
        """Apply each scored category's thresholds; the most severe action is the verdict."""
        private = self._private()
        table = private["_thresholds"]
        actions: list[Action] = []
        for name, score in category_scores.items():
            thresholds = table.get(name)
            if thresholds is None:
                # A misspelt category would otherwise be silently allowed.
                unknown = sorted(category_scores.keys() - self.categories.keys())
                raise FatalError(f"policy {self.id!r} has no categories named {unknown}")
            if thresholds and score < thresholds[-1][0]:  # under the lowest: most scores
                actions.append("allow")
                continue
            if score != score:  # NaN compares false with every threshold: never "allow"
                _finite(score, name)
            act: Action = "allow"
            for min_score, threshold_action in thresholds:
                if score >= min_score:
                    act = threshold_action
                    break
            actions.append(act)
        outcome = (tuple(category_scores), tuple(actions))
        judgements: dict[tuple[tuple[str, ...], tuple[Action, ...]], Judgement]
        judgements = private["_judgements"]
        judgement = judgements.get(outcome)
        if judgement is None:
            judgement = _judgement(*outcome)
            if len(judgements) < _JUDGEMENTS_KEPT:  # bounded: a pack has at most 5**n outcomes
                judgements[outcome] = judgement
        return judgement

    def prompt_text(self) -> str:
        """The pack as the policy prompt a safety LLM reads.

        Byte-identical for the same pack (no dates, no set ordering) so that serving stacks can
        cache it as a prompt prefix.
        """
        return policy_prompt(self)


def _unknown_baselines(title: str, unknown: list[str], known: list[str]) -> ValidationError:
    # Raised as a ValidationError so that the loader points at each bad name's own line.
    message = f"no category by this name; allowed: {', '.join(known)}"
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("unknown_baseline", message),
                loc=("gate", "baseline_f1", name),
                input=name,
            )
            for name in unknown
        ],
    )


_JUDGEMENTS_KEPT = 4096


def _judgement(names: tuple[str, ...], actions: tuple[Action, ...]) -> Judgement:
    action: Action = "allow"
    for act in actions:
        if SEVERITY[act] > SEVERITY[action]:
            action = act
    labels = sorted(name for name, act in zip(names, actions, strict=True) if act != "allow")
    return Judgement(
        action=action, labels=tuple(labels), per_category=dict(zip(names, actions, strict=True))
    )


def _finite(score: float, name: str) -> float:
    # NaN compares false with every threshold and would quietly become "allow".
    if math.isnan(score):
        raise FatalError(f"score for {name!r} is NaN")
    return float(score)
