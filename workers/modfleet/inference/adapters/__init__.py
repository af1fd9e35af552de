"""Prompt rendering and output parsing, one adapter per safety-model family."""

from __future__ import annotations

from modfleet.errors import FatalError
from modfleet.inference.adapters.base import Adapter, ChatMessage, Completion, Request, neutralise
from modfleet.inference.adapters.gpt_oss_safeguard import GptOssSafeguardAdapter
from modfleet.inference.adapters.llama_guard import LlamaGuardAdapter
from modfleet.inference.adapters.qwen3guard import Qwen3GuardAdapter

ADAPTERS = ("gpt-oss-safeguard", "llama-guard-3", "llama-guard-4", "qwen3guard")


def create_adapter(
    name: str, *, keep_reasoning: bool = False, max_tokens: int | None = None
) -> Adapter:
    """The adapter named in settings (``MODFLEET_INFERENCE_ADAPTER``)."""
    if name == "gpt-oss-safeguard":
        if max_tokens is None:
            return GptOssSafeguardAdapter(keep_reasoning=keep_reasoning)
        return GptOssSafeguardAdapter(keep_reasoning=keep_reasoning, max_tokens=max_tokens)
    if name == "llama-guard-3":
        return LlamaGuardAdapter(3)
    if name == "llama-guard-4":
        return LlamaGuardAdapter(4)
    if name == "qwen3guard":
        return Qwen3GuardAdapter()
    raise FatalError(f"unknown inference adapter {name!r}; known: {', '.join(ADAPTERS)}")


__all__ = [
    "ADAPTERS",
    "Adapter",
    "ChatMessage",
    "Completion",
    "GptOssSafeguardAdapter",
    "LlamaGuardAdapter",
    "Qwen3GuardAdapter",
    "Request",
    "create_adapter",
    "neutralise",
]
