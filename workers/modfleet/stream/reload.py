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
        try:
            current = await asyncio.to_thread(fingerprint, self.path)
        except OSError as exc:  # the folder mid-swap or gone: look again at the next tick
            log.error("cannot read the policy folder, keeping %s: %s", self._running(), exc)
            return False
        if current in (self.pipeline.policies.fingerprint, self._refused):
            return False
        try:
            fresh = await asyncio.to_thread(load_policy_set, self.path)
            # A pack whose model this worker cannot run is refused like an invalid one. Off
            # the loop: a new pack's model may take minutes to load, and every worker reloads
            # the same files at once, so a loop stood still that long would cost the group its
            # heartbeats (and trip the worker's own watchdog).
            await asyncio.to_thread(self.pipeline.check, fresh.all())
            # Every worker reads the same files: a pack whose model the server refuses would
            # end each of them on its first batch, and again after each restart.
            running = {p.digest for p in self.pipeline.policies.all()}
            await self.pipeline.probe(p for p in fresh.all() if p.digest not in running)
        except (PolicyInvalid, FatalError) as exc:
            return self._refuse(current, str(exc))
        except Exception as exc:  # noqa: BLE001 - a reload must never end the worker; logged
            return self._refuse(current, f"{type(exc).__name__}: {exc}", exc)
        before = self._running()
        self.pipeline.policies = fresh
        self._refused = None
        self.metrics.policy_reloads.labels(result="applied").inc()
        log.warning("policy reloaded: %s -> %s", before, fresh.describe())
        return True

    def _refuse(self, revision: str, why: str, unforeseen: Exception | None = None) -> bool:
        self._refused = revision
        self.metrics.policy_reloads.labels(result="refused").inc()
        log.error(
            "policy change refused, keeping %s: %s", self._running(), why, exc_info=unforeseen
        )
        return False

    def _running(self) -> str:
        return self.pipeline.policies.describe()
