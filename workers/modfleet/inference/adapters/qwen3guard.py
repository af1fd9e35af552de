"""Qwen3Guard-Gen: the chat template of its model card, and ``Safety:`` / ``Categories:`` answers.

Qwen3Guard has a fixed taxonomy (it does not read custom policies), so its verdicts are in label
space (``qwen3guard:Violent``). A pack maps them with ``model_labels``; a pack that lists none of
them gets the built-in mapping below, so that a Qwen3Guard deployment never reads as "no category
scored" and so "allow" by accident.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modfleet.errors import FatalError
from modfleet.inference.adapters.base import (
    Adapter,
    ChatMessage,
    Completion,
    Request,
    neutralise,
    strip_think,
)
from modfleet.inference.adapters.labels import check_labels
from modfleet.inference.base import Verdict

if TYPE_CHECKING:
    from modfleet.policy import Policy

CATEGORIES = (
    "Violent",
    "Non-violent Illegal Acts",
    "Sexual Content or Sexual Acts",
    "PII",
    "Suicide & Self-Harm",
    "Unethical Acts",
    "Politically Sensitive Topics",
    "Copyright Violation",
    "Jailbreak",
)
LABEL_PREFIX = "qwen3guard:"
LABELS = tuple(LABEL_PREFIX + name for name in CATEGORIES)
SEVERITY = {"safe": 0.0, "controversial": 0.5, "unsafe": 1.0}
# Policy category ids that commonly match a Qwen3Guard category, used only when the pack maps
# none of the model's labels itself.
DEFAULT_MAP: dict[str, tuple[str, ...]] = {
    "violence": ("Violent",),
    "sexual": ("Sexual Content or Sexual Acts",),
    "self_harm": ("Suicide & Self-Harm",),
    "hate": ("Unethical Acts",),
    "harassment": ("Unethical Acts",),
    "illegal": ("Non-violent Illegal Acts",),
    "privacy": ("PII",),
    "pii": ("PII",),
    "jailbreak": ("Jailbreak",),
}

PREFIX = (
    "<|im_start|>user\n"
    "# Task:\n"
    "1) Evaluate whether THE LAST USER's query belongs to safe or unsafe content based on our "
    "safety policy.\n"
    "2) Identify the category of unsafe content found.\n\n"
    "<BEGIN SAFETY POLICY>\n"
    "**Safety: Safe**: The USER's query does not contain any prohibited content or content that "
    "could lead to prohibited content.\n"
    "**Safety: Unsafe**: The USER's query contains prohibited content.\n"
    "**Safety: Controversial**: The USER's query does not explicitly contain prohibited content, "
    "but its intent, context, or potential responses could be misinterpreted, misused, or "
    "exploited to generate unsafe content under certain conditions.\n"
    "<END SAFETY POLICY>\n\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    + "".join(f"{name}.\n" for name in CATEGORIES)
    + "<END UNSAFE CONTENT CATEGORIES>\n\n"
    "<BEGIN CONVERSATION>\n\n"
    "USER: "
)
SUFFIX = (
    "\n\n<END CONVERSATION>\n\n"
    "Provide your safety assessment for ONLY THE LAST **USER's query** in the above "
    "conversation:\n"
    " - The first line must be one of: 'Safety: Safe', 'Safety: Unsafe', "
    "'Safety: Controversial'.\n"
    " - The second line should start with 'Categories:' followed by a list of any unsafe "
    "content categories, separated by commas. If the content is safe, use 'Categories: None'."
    "<|im_end|>\n<|im_start|>assistant\n"
)
# "\uff1a" is the fullwidth colon Qwen models sometimes write after Chinese context.
_SAFETY = re.compile(r"^safety\s*[:\uff1a]\s*(safe|unsafe|controversial)$", re.IGNORECASE)
_CATEGORIES = re.compile(r"^categories\s*[:\uff1a]\s*(.+)$", re.IGNORECASE)
_REFUSAL = re.compile(r"^refusal\s*[:\uff1a]\s*(yes|no)$", re.IGNORECASE)
_CANONICAL = {name.lower(): name for name in CATEGORIES}


class Qwen3GuardAdapter(Adapter):
    name = "qwen3guard"
    endpoint = "completion"

    def check(self, policy: Policy) -> None:
        # A misspelt label maps no answer: its category would score 0.0 on every post.
        check_labels(policy, "Qwen3Guard", LABELS, _owned)
        _mapping(policy)  # a pack none of whose categories it scores would allow everything

    def request(self, policy: Policy, text: str) -> Request:
        # The policy is not part of this model's prompt: its taxonomy is built in.
        return Request(
            endpoint=self.endpoint,
            messages=(ChatMessage("user", neutralise(text)),),
            prompt=PREFIX + neutralise(text) + SUFFIX,
            max_tokens=64,
            regex=_answer_regex(),
            stop=("<|im_end|>",),
        )

    def parse(self, completion: Completion, policy: Policy) -> Verdict:
        lines = [
            line.strip()
            for line in strip_think(completion.text).removesuffix("<|im_end|>").splitlines()
            if line.strip()
        ]
        if not lines:
            return Verdict.unreadable(completion.text, "empty answer")
        safety = _SAFETY.match(lines[0])
        categories = _CATEGORIES.match(lines[1]) if len(lines) > 1 else None
        rest_ok = all(_REFUSAL.match(line) for line in lines[2:])
        if safety is None or categories is None or not rest_ok:
            return Verdict.unreadable(completion.text, "not 'Safety: ...' + 'Categories: ...'")
        listed = _listed(categories.group(1))
        if listed is None:
            return Verdict.unreadable(completion.text, f"unknown categories {lines[1]!r}")
        level = safety.group(1).lower()
        if level == "safe" and listed:
            return Verdict.unreadable(completion.text, "'Safe' with unsafe categories")
        if level != "safe" and not listed:
            return Verdict.unreadable(completion.text, f"'{level}' without a category")
        return _verdict(level, listed, policy)


def _listed(text: str) -> list[str] | None:
    if text.strip().lower() == "none":
        return []
    names = [part.strip().rstrip(".") for part in text.split(",") if part.strip()]
    canonical = [_CANONICAL.get(name.lower()) for name in names]
    if not names or any(name is None for name in canonical):
        return None
    return [name for name in canonical if name is not None]


def _verdict(level: str, listed: list[str], policy: Policy) -> Verdict:
    severity = SEVERITY[level]
    scores = {LABEL_PREFIX + name: (severity if name in listed else 0.0) for name in CATEGORIES}
    categories: dict[str, float] = {}
    for category, labels in _mapping(policy).items():
        categories[category] = severity if any(label in listed for label in labels) else 0.0
    return Verdict(scores=scores, categories=categories, extra={"safety": level})


def _owned(label: str) -> bool:
    # Without case: "Qwen3Guard:Violent" is meant for this model, and matches none of its labels.
    return label.lower().startswith(LABEL_PREFIX)


def _mapping(policy: Policy) -> dict[str, tuple[str, ...]]:
    """Policy category -> the Qwen3Guard categories that score it."""
    own = {
        name: tuple(
            label.removeprefix(LABEL_PREFIX)
            for label in category.model_labels
            if label.startswith(LABEL_PREFIX)
        )
        for name, category in policy.categories.items()
    }
    if any(own.values()):
        return {name: labels for name, labels in own.items() if labels}
    mapped = {name: DEFAULT_MAP[name] for name in policy.categories if name in DEFAULT_MAP}
    if not mapped:
        # Every verdict would score no category, which the policy reads as "allow".
        raise FatalError(
            f"policy {policy.id!r} maps none of Qwen3Guard's categories: list them in "
            f"model_labels as '{LABEL_PREFIX}<Category>'"
        )
    return mapped


def _answer_regex() -> str:
    name = "(" + "|".join(re.escape(n) for n in CATEGORIES) + ")"
    return f"Safety: (Safe|Unsafe|Controversial)\\nCategories: (None|{name}(, {name})*)"
