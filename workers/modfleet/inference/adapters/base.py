"""What every model adapter does: render a policy and a post as the model expects, read its answer.

An adapter knows one model family's prompt format (from its model card) and output format; it
knows nothing of HTTP or engines. The backends (``openai_backend``, ``vllm_backend``) carry the
request it describes and hand the answer back to ``parse``.

Two rules hold for every adapter:

* The policy comes first and is byte-identical for every post, so a serving stack's automatic
  prefix cache holds it once (no dates, ids or per-post data ahead of the post).
* The post is data, never structure: whatever it contains cannot close its turn or fake another
  one (see :func:`neutralise`), and the verdict is read from the model's answer alone.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modfleet.errors import ModfleetError
from modfleet.policy.model import SCORE_PLACES

if TYPE_CHECKING:
    from modfleet.inference.base import Verdict
    from modfleet.policy import Policy

log = logging.getLogger(__name__)

Endpoint = Literal["chat", "completion"]

# Special tokens of every family we render: <|eot_id|>, <|im_end|>, <|start|>, <|channel|>...
# Tokenizers turn these strings into control tokens even inside user text, so a post could
# otherwise end its own turn and write the assistant's answer.
_SPECIAL_TOKEN = re.compile(r"<\|([^<>|\n]{0,64})\|>")
# Markers the guard templates use to frame the conversation and the categories.
_FRAME_MARKER = re.compile(r"<(?=\s*(?:BEGIN|END)\b)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "developer", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Request:
    """One model call, described independently of the transport.

    ``messages`` is what a server that applies the model's own chat template gets; ``prompt`` is
    the same request rendered by us from the model card, for engines and completion endpoints
    that take raw text. ``endpoint`` says which of the two an OpenAI-compatible server is sent.
    """

    endpoint: Endpoint
    messages: tuple[ChatMessage, ...]
    prompt: str
    max_tokens: int
    json_schema: Mapping[str, Any] | None = None  # structured output, where the server has it
    regex: str | None = None  # the same constraint for engines that take a regex
    top_logprobs: int | None = None
    stop: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific body fields


@dataclass(frozen=True, slots=True)
class Completion:
    """What came back: the answer text, any separate reasoning, first-token alternatives."""

    text: str
    reasoning: str | None = None
    # Alternatives for each generated token, in order: token text -> logprob.
    top_logprobs: Sequence[Mapping[str, float]] = ()
    finish_reason: str | None = None


class Adapter(abc.ABC):
    """Prompt rendering and output parsing for one model family."""

    #: Short name used in settings (MODFLEET_INFERENCE_ADAPTER) and in model ids.
    name: str
    #: Which endpoint of an OpenAI-compatible server carries this model's requests.
    endpoint: Endpoint
    #: Text the model card puts before the prompt that servers add themselves (the BOS token).
    bos: str = ""
    #: Version of the wording around the pack; bump it when the prompt template changes, so that
    #: verdicts cached under the old wording are not reused.
    template_version: str = "1"

    @abc.abstractmethod
    def request(self, policy: Policy, text: str) -> Request:
        """The call that classifies ``text`` under ``policy``."""

    @abc.abstractmethod
    def parse(self, completion: Completion, policy: Policy) -> Verdict:
        """The verdict in ``completion``; ``Verdict.unreadable`` when it does not parse."""

    def check(self, policy: Policy) -> None:  # noqa: B027 - most adapters read any pack
        """``FatalError`` when this model cannot score ``policy`` at all."""

    def read(self, completion: Completion, policy: Policy) -> Verdict:
        """``parse``, for the backends: a post can steer what the model answers, so an answer
        that ``parse`` fails on is that post's unreadable verdict (a reviewer sees it), never a
        failure of its batch. Our own errors (a pack the adapter cannot score) still stop."""
        try:
            return self.parse(completion, policy)
        except ModfleetError:
            raise
        except Exception as exc:  # noqa: BLE001 - the answer's failure, recorded as its verdict
            from modfleet.inference.base import Verdict  # that module imports this one's users

            why = f"{type(exc).__name__} reading the answer"
            log.warning("%s: %s", self.name, why)  # the answer may quote the post: not logged
            return Verdict.unreadable(completion.text, why)

    def wire_prompt(self, request: Request) -> str:
        """The raw prompt as sent to a server that adds the BOS token itself."""
        return request.prompt.removeprefix(self.bos)


def neutralise(text: str) -> str:
    """The post as inert data inside a prompt.

    Special-token strings are broken apart (``<|eot_id|>`` -> ``< |eot_id| >``), so that the
    tokenizer reads them as plain characters; frame markers (``<END CONVERSATION>``) lose their
    angle bracket; every line after the first is indented, so that no line of the post can
    start a turn of its own (``User:``/``Agent:``/``USER:`` at the start of a line). The model
    still reads all of the text, which it needs to judge it.
    """
    text = _SPECIAL_TOKEN.sub(lambda m: f"< |{m.group(1)}| >", text)
    text = text.replace("<|", "< |").replace("|>", "| >")
    text = _FRAME_MARKER.sub("\u2039", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\n  ")


def category_codes(policy: Policy) -> dict[str, str]:
    """``S1``, ``S2``, ... for the policy's categories, in the pack's order (stable)."""
    return {f"S{i}": name for i, name in enumerate(policy.categories, start=1)}


def reaching(threshold: float) -> float:
    """The least score that reaches ``threshold`` as decisions round scores
    (``SCORE_PLACES``): what an answer that names a category scores at least."""
    score = round(threshold, SCORE_PLACES)
    return score if score >= threshold else round(score + 10.0**-SCORE_PLACES, SCORE_PLACES)


def clamp(score: float) -> float:
    return min(1.0, max(0.0, float(score)))


def strip_think(text: str) -> str:
    """Qwen3-family answers may open with an empty ``<think></think>`` block; drop it."""
    stripped = text.lstrip()
    if stripped.startswith("<think>"):
        end = stripped.find("</think>")
        return "" if end < 0 else stripped[end + len("</think>") :]
    return text
