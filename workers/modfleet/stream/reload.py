"""Hot reload of policy packs: a changed file (or ConfigMap) applies from the next batch.

A pack set that fails validation is refused whole, the running one is kept, and the worker
says so loudly (an ERROR log line with every problem and a metric), once per bad revision.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from modfleet.errors import FatalError
from modfleet.metrics import Metrics
from modfleet.policy.load import PolicyInvalid
from modfleet.policy.packs import fingerprint, load_policy_set
from modfleet.stream.pipeline import Pipeline

log = logging.getLogger(__name__)


class PolicyReloader:
    def __init__(self, path: Path, pipeline: Pipeline, metrics: Metrics) -> None:
        self.path = path
        self.pipeline = pipeline
        self.metrics = metrics
        self._refused: str | None = None

    async def check(self) -> bool:
        """Reload when the files changed; True when a new set was put in place."""
        current = await asyncio.to_thread(fingerprint, self.path)
        if current in (self.pipeline.policies.fingerprint, self._refused):
            return False
        try:
            fresh = await asyncio.to_thread(load_policy_set, self.path)
            # A pack whose model this worker cannot run is refused like an invalid one.
            self.pipeline.backends.check(fresh.all())
        except (PolicyInvalid, FatalError) as exc:
            self._refused = current
            self.metrics.policy_reloads.labels(result="refused").inc()
            log.error("policy change refused, keeping %s: %s", self._running(), exc)
            return False
        before = self._running()
        self.pipeline.policies = fresh
        self._refused = None
        self.metrics.policy_reloads.labels(result="applied").inc()
        log.warning("policy reloaded: %s -> %s", before, fresh.describe())
        return True

    def _running(self) -> str:
        return self.pipeline.policies.describe()
