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
    if settings.classifier_backend == "embedded":
        from modfleet.inference.embedded import EmbeddedClassifier

        return EmbeddedClassifier()
    raise FatalError(f"unknown classifier_backend {settings.classifier_backend!r}")


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
