"""The faust app every modfleet stream process runs on: one place for faust's options.

The worker builds its agent on it, and the benchmark's faust passthrough (stage (b)) too, so
that the baseline the worker is measured against is configured like the worker by construction:
same broker settings, fetch wait, compression, serialisers and web server.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import faust
from mode.utils.queues import ThrowableQueue

from modfleet.kafka import compression_type, faust_credentials
from modfleet.settings import Settings
from modfleet.stream.held import BufferQueue
from modfleet.stream.transport import use_consumer


class _App(faust.App):
    """faust's app, with stream buffers bounded by bytes as well as by posts (stream/held.py)."""

    def __init__(self, *args: Any, buffer_bytes: int, **kwargs: Any) -> None:
        self.buffer_bytes = buffer_bytes
        super().__init__(*args, **kwargs)

    def FlowControlQueue(
        self, maxsize: int | None = None, *, clear_on_resume: bool = False
    ) -> ThrowableQueue[Any]:
        return BufferQueue(
            self.buffer_bytes,
            maxsize=maxsize,
            flow_control=self.flow_control,
            clear_on_resume=clear_on_resume,
        )


def faust_app(s: Settings) -> faust.App:
    """A faust app for consumer group ``s.consumer_group``, serving only the pages it adds."""
    app = _App(
        s.consumer_group,
        buffer_bytes=s.stream_buffer_bytes,
        broker=s.broker_url,
        broker_credentials=faust_credentials(s),
        broker_session_timeout=s.broker_session_timeout_s,
        broker_heartbeat_interval=s.broker_heartbeat_interval_s,
        store="memory://",
        # faust writes a small data folder even with in-memory tables: keep it off the
        # working directory (read-only in the Helm chart) and out of checkouts.
        datadir=str(Path(tempfile.gettempdir()) / f"modfleet-{s.consumer_group}"),
        autodiscover=False,
        # Topics come from the catalogue (topic-init job or `modfleet topics create`); a
        # worker must never create one with the wrong partition count by accident.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        # faust's own pages (/router, /table, /graph, statistics) tell a caller about the
        # cluster's layout: a worker serves /health, /ready and /metrics only.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        web_bind=s.web_host,
        web_host=s.web_host,
        web_port=s.web_port,
        producer_max_request_size=s.producer_max_request_bytes,
        producer_compression_type=compression_type(s),
        key_serializer="raw",
        value_serializer="raw",
    )
    # Before any topic reaches the transport.
    use_consumer(app, s.consumer_fetch_max_wait_ms, s.max_batch_inflated_bytes)
    return app
