"""Request bodies and responses of the OpenAI-compatible API, as vLLM, SGLang and llama.cpp
serve it: ``/chat/completions`` for models whose server applies the chat template, and
``/completions`` for prompts we render ourselves from the model card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from modfleet.inference.adapters import Adapter, Completion, Request

# "json_schema" is OpenAI's and vLLM's; llama-cpp-python's server takes "json_object" + schema.
ResponseFormat = Literal["json_schema", "json_object"]


class MalformedResponse(Exception):
    """A 200 answer without the fields every OpenAI-compatible server sends."""


def path(request: Request) -> str:
    return "/chat/completions" if request.endpoint == "chat" else "/completions"


def body(
    adapter: Adapter,
    request: Request,
    model: str,
    response_format: ResponseFormat,
    cache_salt: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "temperature": 0.0,  # a classifier: the most likely answer, every time
    }
    if request.stop:
        out["stop"] = list(request.stop)
    if cache_salt:
        out["cache_salt"] = cache_salt  # vLLM: prefix-cache blocks only shared within a salt
    out.update(request.extra)
    if request.endpoint == "chat":
        out["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.top_logprobs:
            out["logprobs"] = True
            out["top_logprobs"] = request.top_logprobs
    else:
        out["prompt"] = adapter.wire_prompt(request)
        if request.top_logprobs:
            out["logprobs"] = request.top_logprobs
    if request.json_schema is not None:
        out["response_format"] = _response_format(request.json_schema, response_format)
    elif request.regex and response_format == "json_schema":
        # vLLM's structured outputs (>= 0.10.2): a raw-prompt answer held to its grammar.
        out["structured_outputs"] = {"regex": request.regex}
    return out


def _response_format(schema: Mapping[str, Any], kind: ResponseFormat) -> dict[str, Any]:
    if kind == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    return {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": dict(schema), "strict": True},
    }


def completion(data: Any, endpoint: str) -> Completion:
    """The first choice of a response body; MalformedResponse when it has none."""
    try:
        choice = data["choices"][0]
        if endpoint == "chat":
            message = choice["message"]
            text = message.get("content") or ""
            # vLLM names the analysis channel "reasoning_content" (newer: "reasoning").
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            top = _chat_logprobs(choice.get("logprobs"))
        else:
            text = choice["text"] or ""
            reasoning = None
            top = _completion_logprobs(choice.get("logprobs"))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedResponse(f"no choices in the response: {exc!r}") from exc
    except (ValueError, OverflowError) as exc:  # a logprob that is no float
        raise MalformedResponse(f"a logprob that is not a number: {exc}") from exc
    return Completion(
        text=str(text),
        reasoning=None if reasoning is None else str(reasoning),
        top_logprobs=top,
        finish_reason=choice.get("finish_reason"),
    )


def _chat_logprobs(logprobs: Any) -> Sequence[Mapping[str, float]]:
    if not logprobs or not logprobs.get("content"):
        return ()
    out: list[dict[str, float]] = []
    for position in logprobs["content"]:
        alternatives = {a["token"]: float(a["logprob"]) for a in position.get("top_logprobs", [])}
        alternatives.setdefault(position["token"], float(position["logprob"]))
        out.append(alternatives)
    return out


def _completion_logprobs(logprobs: Any) -> Sequence[Mapping[str, float]]:
    if logprobs and logprobs.get("content"):
        return _chat_logprobs(logprobs)  # llama.cpp's server answers completions in chat's shape
    if not logprobs or not logprobs.get("top_logprobs"):
        return ()
    return [
        {str(token): float(lp) for token, lp in (position or {}).items()}
        for position in logprobs["top_logprobs"]
    ]
