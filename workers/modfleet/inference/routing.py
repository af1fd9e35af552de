"""Each pack chooses its model: the backends a worker's packs need, one per model binding.

A pack's ``model:`` section names the backend and the model its thresholds were calibrated
for; the worker builds that backend (connection details come from Settings) and scores the
pack's posts with it, so one fleet can serve a cheap embedded pack for one surface and an LLM
pack for another. ``MODFLEET_CLASSIFIER_BACKEND``, when set, overrides every pack's
backend (a deployment-wide choice, such as putting the cascade in front of an embedded pack);
the worker logs each pack it overrides. A pack whose backend cannot be built is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from modfleet.contracts.fields import problem
from modfleet.errors import FatalError, ModfleetError
from modfleet.inference.base import Classifier

if TYPE_CHECKING:
    from modfleet.policy import Policy
    from modfleet.settings import Settings

log = logging.getLogger(__name__)

# (backend, model) -> a classifier for it
Build = Callable[[str, str], Classifier]
BACKENDS = frozenset({"embedded", "openai", "vllm", "cascade"})


class Backends:
    def __init__(self, build: Build, override: str | None = None) -> None:
        self._build = build
        self._override = override
        self._built: dict[tuple[str, str], Classifier] = {}
        # Per pack (by digest): every post asks, so the binding is worked out (and an override
        # logged) once per pack, not once per post.
        self._by_pack: dict[str, Classifier] = {}
        self._fixed: Classifier | None = None

    @classmethod
    def fixed(cls, classifier: Classifier) -> Backends:
        """One classifier for every pack: a plugin, or a test's own."""
        backends = cls(lambda backend, model: classifier)
        backends._fixed = classifier
        return backends

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        from modfleet.inference.factory import create_classifier

        if settings.classifier_plugin:
            return cls.fixed(create_classifier(settings))

        def build(backend: str, model: str) -> Classifier:
            remote = backend == "openai" or (
                backend == "cascade" and settings.cascade_llm_backend == "openai"
            )
            if backend == "embedded" and model:
                from modfleet.inference.embedded import EmbeddedClassifier, pinned_model_dir

                return EmbeddedClassifier(pinned_model_dir(settings.embedded_models_dir, model))
            if remote and not settings.inference_url_list:
                raise FatalError("no inference server is configured (MODFLEET_INFERENCE_URLS)")
            update: dict[str, object] = {"classifier_backend": backend}
            if model and settings.classifier_backend is None:
                # The pack chose its model: that id is the name to ask the server for. Under a
                # deployment-wide backend, MODFLEET_INFERENCE_MODEL names the served model.
                update["inference_model"] = model
            return create_classifier(settings.model_copy(update=update))

        return cls(build, settings.classifier_backend)

    @property
    def default(self) -> Classifier | None:
        return self._fixed

    def for_policy(self, policy: Policy) -> Classifier:
        if self._fixed is not None:
            return self._fixed
        found = self._by_pack.get(policy.digest)
        if found is None:
            key = self._binding(policy)
            found = self._built.get(key)
            if found is None:
                found = self._built[key] = self._make(key, policy)
            self._by_pack[policy.digest] = found
        return found

    def check(self, policies: Iterable[Policy]) -> None:
        """Build every pack's backend now: a pack whose model is not available is refused
        when it is loaded, not on its first post."""
        for policy in policies:
            classifier = self.for_policy(policy)
            classifier.check_pack(policy)
            check_model_id(classifier.model_id, self._model_source(policy))

    def all(self) -> list[Classifier]:
        return [self._fixed] if self._fixed is not None else list(self._built.values())

    def _binding(self, policy: Policy) -> tuple[str, str]:
        if self._override and self._override != policy.model.backend:
            log.warning(
                "pack %s is bound to %s; MODFLEET_CLASSIFIER_BACKEND=%s overrides it",
                policy.label,
                policy.model.backend,
                self._override,
            )
        return self._bound(policy)

    def _model_source(self, policy: Policy) -> str:
        """What names the model of ``policy``'s backend: the setting or field to change when
        the model id it makes is one decisions cannot carry."""
        if self._fixed is not None:
            return "the classifier's model_id (MODFLEET_CLASSIFIER_PLUGIN's, or its own)"
        backend, model = self._bound(policy)
        if model and (backend == "embedded" or self._override is None):
            return f"pack {policy.label}'s model.id"
        if backend == "embedded":
            return "the embedded model"
        return f"MODFLEET_INFERENCE_MODEL (under the {backend} backend)"

    def _bound(self, policy: Policy) -> tuple[str, str]:
        backend = self._override or policy.model.backend
        # Embedded models are chosen per category by their labels; one instance serves all,
        # except a model pinned by version (modfleet-embedded@VERSION, e.g. a retrained one).
        if backend == "embedded":
            return backend, policy.model.id if "@" in policy.model.id else ""
        return backend, policy.model.id

    def _make(self, key: tuple[str, str], policy: Policy) -> Classifier:
        backend, model = key
        if backend not in BACKENDS:
            raise FatalError(
                f"pack {policy.label} names model backend {backend!r}; "
                f"this worker has {sorted(BACKENDS)}"
            )
        try:
            return self._build(backend, model)
        except (ModfleetError, ImportError, ValueError) as exc:
            raise FatalError(
                f"pack {policy.label}: its model ({backend} {model or 'embedded'}) is not "
                f"available: {exc}"
            ) from exc


def check_model_id(model_id: str, source: str) -> None:
    """FatalError unless ``model_id`` is one every decision and escalation can carry: a model
    name that fits its server may still make, wrapped by its adapter and the cascade, an id
    their schemas refuse, and then every output of the fleet would be invalid."""
    found = problem("model_id", model_id)
    if found is not None:
        shown = ascii(model_id if len(model_id) <= 80 else model_id[:80] + "...")
        raise FatalError(
            f"{source} makes a model id that decisions cannot carry: {shown} {found}; "
            "name the model shorter, without control characters"
        )
