"""Llama Guard 3 and 4: the model card's prompt, with the policy's categories as custom ones.

The model answers ``safe``, or ``unsafe`` and on a second line the violated codes
(``S1,S3``). The codes are the policy's categories in the pack's order (S1 is the first
category), written into the prompt as the model card's custom-category section.

The answer decides; the logprobs only grade it. Where the server returns them, the probability
of ``unsafe`` at the answer's first token is the score, held to the answer's side of the pack's
thresholds: a listed category scores at least its lowest threshold (so it gets at least the
mildest action), and every category of a ``safe`` answer stays below its lowest one. Sampling
(or a constraint on the answer) can pick the token the logprobs make less likely, and a post
must not be allowed on an ``unsafe`` answer, nor acted on for a ``safe`` one. Without logprobs
an answer scores 1.0 (listed) or 0.0.

``taxonomy="mlcommons"`` keeps the model's built-in hazard list (S1 Violent Crimes ... S14 Code
Interpreter Abuse) instead; its verdicts are then in label space (``llama-guard:S1``), mapped
onto the pack by ``model_labels``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from modfleet.errors import FatalError
from modfleet.inference.adapters.base import (
    Adapter,
    ChatMessage,
    Completion,
    Request,
    category_codes,
    neutralise,
    reaching,
)
from modfleet.inference.adapters.labels import check_labels
from modfleet.inference.base import Verdict
from modfleet.policy.model import SCORE_PLACES

if TYPE_CHECKING:
    from modfleet.policy import Category, Policy

Version = Literal[3, 4]
Taxonomy = Literal["policy", "mlcommons"]

# The MLCommons hazard taxonomy of the Llama Guard 3 / 4 model cards.
MLCOMMONS: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
LABEL_PREFIX = "llama-guard:"
LABELS = tuple(LABEL_PREFIX + code for code in MLCOMMONS)
_STEP = 10.0**-SCORE_PLACES  # scores are decided on to SCORE_PLACES places

# (header of the user turn, end of turn + assistant header, task wording) per model card.
_FRAMES: dict[int, tuple[str, str, str]] = {
    3: (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "according our safety policy",
    ),
    4: (
        "<|begin_of_text|><|header_start|>user<|header_end|>\n\n",
        "<|eot|><|header_start|>assistant<|header_end|>\n\n",
        "according to our safety policy",
    ),
}
_INSTRUCTIONS = (
    "Provide your safety assessment for ONLY THE LAST User message in the above conversation:\n"
    "- First line must read 'safe' or 'unsafe'.\n"
    "- If unsafe, a second line must include a comma-separated list of violated categories."
)
_END_TOKENS = ("<|eot_id|>", "<|eom_id|>", "<|eot|>", "<|end_of_text|>")


class LlamaGuardAdapter(Adapter):
    endpoint = "completion"
    bos = "<|begin_of_text|>"

    def __init__(self, version: Version = 3, taxonomy: Taxonomy = "policy") -> None:
        self.version = version
        self.taxonomy = taxonomy
        self.name = f"llama-guard-{version}"

    def check(self, policy: Policy) -> None:
        if self.taxonomy != "mlcommons":
            return  # the pack's own categories are the codes: its labels are not read
        # In label space a misspelt label, or none at all, leaves categories never scored.
        check_labels(policy, f"Llama Guard {self.version} (MLCommons)", LABELS, _owned)
        if not any(label in LABELS for c in policy.categories.values() for label in c.model_labels):
            raise FatalError(
                f"policy {policy.id!r} maps none of Llama Guard's MLCommons codes: list them "
                f"in model_labels as '{LABEL_PREFIX}S1' ... '{LABEL_PREFIX}S14'"
            )

    def request(self, policy: Policy, text: str) -> Request:
        codes = self._codes(policy)
        return Request(
            endpoint=self.endpoint,
            messages=(ChatMessage("user", neutralise(text)),),
            prompt=self.prefix(policy) + neutralise(text) + self._suffix(),
            max_tokens=16 + 4 * len(codes),
            regex=_answer_regex(codes),
            top_logprobs=5,
            stop=_END_TOKENS,
        )

    def prefix(self, policy: Policy) -> str:
        """Everything ahead of the post: identical for every post under one policy."""
        header, _, wording = _FRAMES[self.version]
        return (
            f"{header}Task: Check if there is unsafe content in 'User' messages in conversations "
            f"{wording} with the below categories.\n\n"
            f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{self.categories_text(policy)}\n"
            "<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\nUser: "
        )

    def _suffix(self) -> str:
        _, turn_end, _ = _FRAMES[self.version]
        return f"\n\n<END CONVERSATION>\n\n{_INSTRUCTIONS}{turn_end}"

    def categories_text(self, policy: Policy) -> str:
        if self.taxonomy == "mlcommons":
            return "\n".join(f"{code}: {title}." for code, title in MLCOMMONS.items())
        return "\n".join(
            _custom_category(code, policy.categories[name])
            for code, name in category_codes(policy).items()
        )

    def parse(self, completion: Completion, policy: Policy) -> Verdict:
        answer = _strip_end_tokens(completion.text)
        lines = [line.strip() for line in answer.splitlines() if line.strip()]
        if not lines:
            return Verdict.unreadable(completion.text, "empty answer")
        head = lines[0].lower()
        p_unsafe = _p_unsafe(completion.text, completion.top_logprobs)
        if head == "safe" and len(lines) == 1:
            return self._verdict([], p_unsafe, policy)
        if head != "unsafe" or len(lines) != 2:
            return Verdict.unreadable(completion.text, "not 'safe' or 'unsafe' + categories")
        listed = [code.strip().upper() for code in lines[1].split(",")]
        known = self._codes(policy)
        if not listed or any(code not in known for code in listed):
            return Verdict.unreadable(completion.text, f"unknown category codes {lines[1]!r}")
        return self._verdict(listed, p_unsafe, policy)

    def _codes(self, policy: Policy) -> dict[str, str]:
        return dict(MLCOMMONS) if self.taxonomy == "mlcommons" else category_codes(policy)

    def _verdict(self, listed: Sequence[str], p_unsafe: float | None, policy: Policy) -> Verdict:
        lowest = self._lowest_thresholds(policy)
        by_code: dict[str, float] = {}
        for code in self._codes(policy):
            floor, ceiling = lowest.get(code, (0.0, 1.0))
            if p_unsafe is None:
                by_code[code] = 1.0 if code in listed else 0.0
            elif code in listed:
                by_code[code] = max(p_unsafe, floor)
            else:
                # Unlisted codes of an "unsafe" answer are 0.0 (below any threshold but 0); a
                # "safe" answer keeps the model's doubt, short of acting on it.
                by_code[code] = 0.0 if listed else min(p_unsafe, ceiling)
        labels = {LABEL_PREFIX + code: score for code, score in by_code.items()}
        extra = {"codes": list(listed), "p_unsafe": p_unsafe}
        if self.taxonomy == "mlcommons":
            return Verdict(scores=labels, extra=extra)
        names = category_codes(policy)
        categories = {names[code]: score for code, score in by_code.items()}
        return Verdict(scores=labels, categories=categories, extra=extra)

    def _lowest_thresholds(self, policy: Policy) -> dict[str, tuple[float, float]]:
        """Code -> (least score that reaches the lowest threshold of every category it scores,
        greatest score below the lowest threshold of each of them), as decisions round."""
        if self.taxonomy == "mlcommons":
            scored = {
                code: [c for c in policy.categories.values() if label in c.model_labels]
                for code, label in zip(MLCOMMONS, LABELS, strict=True)
            }
        else:
            scored = {
                code: [policy.categories[name]] for code, name in category_codes(policy).items()
            }
        bounds: dict[str, tuple[float, float]] = {}
        for code, categories in scored.items():
            if categories:
                mins = [c.thresholds[-1].min_score for c in categories]  # listed highest first
                bounds[code] = (max(map(reaching, mins)), min(map(_below, mins)))
        return bounds


def _below(threshold: float) -> float:
    # A threshold of 0 acts on every post: nothing scores below it.
    score = round(threshold, SCORE_PLACES)
    return max(0.0, score if score < threshold else round(score - _STEP, SCORE_PLACES))


def _owned(label: str) -> bool:
    return label.lower().startswith(LABEL_PREFIX)


def _custom_category(code: str, category: Category) -> str:
    lines = [f"{code}: {category.title}.", category.definition, "Should not:"]
    lines += [f"- {item}" for item in category.violates]
    lines += ["Can:"]
    lines += [f"- {item}" for item in category.does_not_violate]
    return "\n".join(lines)


def _answer_regex(codes: Mapping[str, str]) -> str:
    code = "(" + "|".join(sorted(codes, key=len, reverse=True)) + ")"
    return f"(safe|unsafe\\n{code}(,{code})*)"


def _strip_end_tokens(text: str) -> str:
    text = text.strip()
    for token in _END_TOKENS:
        text = text.removesuffix(token).rstrip()
    return text


def _p_unsafe(text: str, top_logprobs: Sequence[Mapping[str, float]]) -> float | None:
    """P(unsafe) at the answer's first token, from its alternatives; None when not returned.

    Tokenizers split "unsafe" differently ("unsafe", "uns"+"afe"), so a token counts as unsafe
    when it is a prefix of "unsafe" that is not one of "safe".
    """
    alternatives = _answer_position(text, top_logprobs)
    if not alternatives:
        return None
    p_unsafe = p_safe = 0.0
    for token, logprob in alternatives.items():
        word = token.strip().lower()
        if word and "unsafe".startswith(word) and not "safe".startswith(word):
            p_unsafe += math.exp(logprob)
        elif word and "safe".startswith(word):
            p_safe += math.exp(logprob)
    total = p_unsafe + p_safe
    return None if total == 0 else p_unsafe / total


def _answer_position(
    text: str, top_logprobs: Sequence[Mapping[str, float]]
) -> Mapping[str, float] | None:
    """The alternatives of the token that began the answer, found by spelling ``text`` with
    the positions' tokens, never by which alternative is likeliest: under a constraint, or
    sampling, the token produced need not be the favourite (a blank the answer does not have),
    and the next position's (a code's "S") would then be read as "safe". None where a blank
    ahead of the answer is not among its position's alternatives: nothing says where it is.
    """
    rest = text
    for alternatives in top_logprobs:
        if not rest:
            return None
        if not rest[0].isspace():
            return alternatives
        # Of "\n" and "\n\n", the longer: Llama 3's tokenizer spells a run of blanks as one token.
        spelt = [token for token in alternatives if token and rest.startswith(token)]
        if not spelt:
            return None
        token = max(spelt, key=len)
        if token.strip():
            return alternatives  # one token of the blanks and the answer's start
        rest = rest[len(token) :]
    return None
