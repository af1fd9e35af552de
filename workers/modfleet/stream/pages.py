"""The worker's HTTP pages: /health (liveness), /ready (readiness) and /metrics.

faust's own pages (/router, /table, /graph, statistics) are switched off in the app: they tell a
caller about the cluster's layout, and an orchestrator needs none of them.
"""

from __future__ import annotations

from typing import Any

import faust

from modfleet.metrics import Metrics
from modfleet.policy.packs import PolicySet


class Liveness:
    """What /health and /ready report: the agent's own state, not only the process's."""

    def __init__(self) -> None:
        self.agent_running = False
        self.joined = False  # the consumer joined its group and got an assignment
        self.down: str | None = None  # what the worker holds its batch for ("the model")

    def not_ready(self) -> str | None:
        if not self.agent_running:
            return "agent not running"
        if not self.joined:
            return "not yet in the consumer group"
        if self.down is not None:
            return f"{self.down} is down: consumption paused"
        return None


def add_pages(app: faust.App, policies: Any, metrics: Metrics, liveness: Liveness) -> None:
    """``policies`` is called for the running pack set, which a hot reload swaps."""
    # faust binds page handlers to its View class, so they must be plain functions.

    async def health(web: Any, request: Any) -> Any:
        # Liveness: the agent runs. A worker whose agent stopped exits, but say so meanwhile.
        status = 200 if liveness.agent_running else 503
        running: PolicySet = policies()
        body = {"status": "ok" if status == 200 else "agent stopped"}
        body["policies"] = running.describe()
        return web.json(body, status=status)

    async def ready(web: Any, request: Any) -> Any:
        why = liveness.not_ready()
        return web.json({"ready": why is None, "why": why}, status=503 if why else 200)

    async def prometheus(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    app.page("/health")(health)
    app.page("/ready")(ready)
    app.page("/metrics")(prometheus)
