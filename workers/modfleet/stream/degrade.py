"""What a pack does while its model is down: wait, decide with a fallback, or escalate.

``wait`` (the default) sends ``BackendDown`` up to the agent, which holds the batch, stops taking
records and reports not-ready until the model answers again: nothing is decided or
dead-lettered meanwhile. ``fallback`` scores with the backend the pack names, and each decision
records that model and the one it stood in for. ``escalate`` sends every post to human review.
Such verdicts are never cached: they are not the pack's model's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from modfleet.errors import FatalError, ModfleetError
from modfleet.inference.base import Classifier, Verdict
from modfleet.inference.routing import check_model_id
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.stream.infer import BackendDown, Inference, Results, Retry

log = logging.getLogger(__name__)

BackendFactory = Callable[[str], Classifier]


class Degrade:
    def __init__(self, metrics: Metrics, retry: Retry, build: BackendFactory | None) -> None:
        self.metrics = metrics
        self.retry = retry
        self.build = build
        self._fallbacks: dict[str, Inference] = {}

    def check(self, policies: Iterable[Policy]) -> None:
        """Build every fallback the packs name now: one that cannot be built would otherwise
        be found when the model goes down, and end the worker just when it should stand in."""
        for policy in policies:
            name = policy.model.fallback
            if policy.model.on_model_down != "fallback" or not name or self.build is None:
                continue
            try:
                fallback = self._inference(name).classifier
            except (ModfleetError, ImportError, ValueError) as exc:
                raise FatalError(
                    f"pack {policy.label}: its fallback ({name}) cannot be built: {exc}"
                ) from exc
            fallback.check_pack(policy)  # its labels, as the pack's own model checks its own
            named = "the embedded model" if name == "embedded" else "MODFLEET_INFERENCE_MODEL"
            check_model_id(fallback.model_id, f"{named} (pack {policy.label}'s fallback, {name})")

    async def classify(
        self, inference: Inference, policy: Policy, keys: Sequence[str], texts: Sequence[str]
    ) -> Results:
        """The pack's model's verdicts, or what the pack says to do while that model is down."""
        try:
            return await inference.classify(policy, keys, texts)
        except FatalError as exc:
            if policy.mode != "shadow":
                raise
            # A candidate's mistake (a model its server does not serve) costs only its own
            # decisions, never the live pack's enforcement.
            log.error("shadow policy %s cannot be scored: %s", policy.label, exc)
            return Results({}, dict.fromkeys(keys, f"{type(exc).__name__}: {exc}"))
        except BackendDown:
            return await self.verdicts(policy, keys, texts, inference.classifier.model_id)

    async def verdicts(
        self, policy: Policy, keys: Sequence[str], texts: Sequence[str], down: str
    ) -> Results:
        """Verdicts for the texts whose model (``down``) is not answering, as the pack says."""
        if policy.mode == "shadow":
            # A shadow pack never holds up the live one: its posts go without a shadow decision.
            return Results({}, {k: f"model {down} is down" for k in keys})
        mode = policy.model.on_model_down
        if mode == "escalate":
            verdict = Verdict(scores={}, rationale=f"model {down} is down", model_down=True)
            return Results(dict.fromkeys(keys, verdict), {})
        if mode == "fallback" and policy.model.fallback and self.build is not None:
            return await self._fallback(policy, policy.model.fallback, keys, texts, down)
        raise BackendDown(f"model {down} is down; pack {policy.id} waits for it")

    async def _fallback(
        self, policy: Policy, name: str, keys: Sequence[str], texts: Sequence[str], down: str
    ) -> Results:
        inference = self._inference(name)
        results = await inference.classify(policy, keys, texts)
        model = inference.classifier.model_id
        found = {
            k: replace(v, model_id=model, fallback_from=down) for k, v in results.found.items()
        }
        return Results(found, results.failed)

    def _inference(self, name: str) -> Inference:
        inference = self._fallbacks.get(name)
        if inference is None:
            assert self.build is not None
            inference = Inference(self.build(name), self.retry, self.metrics)
            self._fallbacks[name] = inference
        return inference
