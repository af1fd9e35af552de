"""Llama Guard 3 and 4: the model card's prompt, with the policy's categories as custom ones.

The model answers ``safe``, or ``unsafe`` and on a second line the violated codes
(``S1,S3``). The codes are the policy's categories in the pack's order (S1 is the first
category), written into the prompt as the model card's custom-category section. The
probability of the first answer token being ``unsafe`` is the score where the server returns
logprobs; without them an answer scores 1.0 (listed) or 0.0.

``taxonomy="mlcommons"`` keeps the model's built-in hazard list (S1 Violent Crimes ... S14 Code
Interpreter Abuse) instead; its verdicts are then in label space (``llama-guard:S1``), mapped
onto the pack by ``model_labels``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from modfleet.inference.adapters.base import (
    Adapter,
    ChatMessage,
    Completion,
    Request,
    category_codes,
    neutralise,
)
from modfleet.inference.base import Verdict

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
        if head == "safe" and len(lines) == 1:
            return self._verdict([], _p_unsafe(completion.top_logprobs), policy)
        if head != "unsafe" or len(lines) != 2:
            return Verdict.unreadable(completion.text, "not 'safe' or 'unsafe' + categories")
        listed = [code.strip().upper() for code in lines[1].split(",")]
        known = self._codes(policy)
        if not listed or any(code not in known for code in listed):
            return Verdict.unreadable(completion.text, f"unknown category codes {lines[1]!r}")
        return self._verdict(listed, _p_unsafe(completion.top_logprobs), policy)

    def _codes(self, policy: Policy) -> dict[str, str]:
        return dict(MLCOMMONS) if self.taxonomy == "mlcommons" else category_codes(policy)

    def _verdict(self, listed: Sequence[str], p_unsafe: float | None, policy: Policy) -> Verdict:
        # Without logprobs the answer itself is the score; with them, a "safe" answer keeps the
        # model's doubt on every category, so thresholds below it still act.
        hit = 1.0 if p_unsafe is None else p_unsafe
        rest = 0.0 if (listed or p_unsafe is None) else p_unsafe
        by_code = {code: (hit if code in listed else rest) for code in self._codes(policy)}
        labels = {LABEL_PREFIX + code: score for code, score in by_code.items()}
        extra = {"codes": list(listed), "p_unsafe": p_unsafe}
        if self.taxonomy == "mlcommons":
            return Verdict(scores=labels, extra=extra)
        names = category_codes(policy)
        categories = {names[code]: score for code, score in by_code.items()}
        return Verdict(scores=labels, categories=categories, extra=extra)


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


def _p_unsafe(top_logprobs: Sequence[Mapping[str, float]]) -> float | None:
    """P(unsafe) at the first answer token, from its alternatives; None when not returned.

    The first non-blank token decides the answer; tokenizers split "unsafe" differently
    ("unsafe", "uns"+"afe"), so a token counts as unsafe when it is a prefix of "unsafe" that
    is not one of "safe".
    """
    for alternatives in top_logprobs:
        if not alternatives:
            continue
        best = max(alternatives, key=lambda token: alternatives[token])
        if not best.strip():
            continue  # a leading newline; the answer starts at the next token
        p_unsafe = p_safe = 0.0
        for token, logprob in alternatives.items():
            word = token.strip().lower()
            if word and "unsafe".startswith(word) and not "safe".startswith(word):
                p_unsafe += math.exp(logprob)
            elif word and "safe".startswith(word):
                p_safe += math.exp(logprob)
        total = p_unsafe + p_safe
        return None if total == 0 else p_unsafe / total
    return None
