"""Chooses the inference backend from Settings."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from modfleet.errors import FatalError
from modfleet.inference.base import Classifier

if TYPE_CHECKING:
    from modfleet.settings import Settings


def create_classifier(settings: Settings) -> Classifier:
    """The backend named by ``classifier_backend``, or a plugin named by ``classifier_plugin``."""
    if settings.classifier_plugin:
        return _load_plugin(settings.classifier_plugin, settings)
    backend = settings.classifier_backend or "embedded"
    if backend == "embedded":
        from modfleet.inference.embedded import EmbeddedClassifier

        return EmbeddedClassifier()
    if backend in ("openai", "vllm"):
        return _llm(backend, settings)
    if backend == "cascade":
        from modfleet.inference.cascade import CascadeClassifier
        from modfleet.inference.embedded import EmbeddedClassifier

        second = _llm(settings.cascade_llm_backend, settings)
        low, high = settings.cascade_band_low, settings.cascade_band_high
        return CascadeClassifier(EmbeddedClassifier(), second, low, high)
    raise FatalError(f"unknown classifier_backend {backend!r}")


def _llm(backend: str, settings: Settings) -> Classifier:
    # Imported here: the vLLM module pulls in torch and CUDA, which a CPU worker never needs.
    if backend == "openai":
        from modfleet.inference.openai_backend import OpenAICompatibleClassifier

        return OpenAICompatibleClassifier.from_settings(settings)
    from modfleet.inference.vllm_backend import VLLMClassifier

    return VLLMClassifier.from_settings(settings)


def _load_plugin(spec: str, settings: Settings) -> Classifier:
    """``package.module:factory``: a callable taking Settings and returning a Classifier."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise FatalError(f"classifier_plugin {spec!r} is not of the form 'module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise FatalError(f"classifier_plugin {spec!r} cannot be loaded: {exc}") from exc
    classifier = factory(settings)
    if not isinstance(classifier, Classifier):
        raise FatalError(f"classifier_plugin {spec!r} returned {type(classifier).__name__}")
    return classifier
