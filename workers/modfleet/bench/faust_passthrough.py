"""Stage (b): a faust app that forwards posts with no work, run as its own process.

It is configured like the stream worker (same faust options, same fetch wait, its output
compressed alike, same ``take_events`` batching, same wait for the broker's acks before a batch
is done), minus everything modfleet does to a post, so that the worker's rate over this one's is
the cost of our own code.

Run as ``python -m modfleet.bench.faust_passthrough SOURCES WEB_PORT`` (SOURCES: topics,
comma-separated) with the worker's MODFLEET_* environment: its broker, consumer group and
decisions topic (the sink) are the worker's. ``/health`` answers once the web server is up and
``/count`` says how many records were forwarded.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import faust

from modfleet.kafka import compression_type
from modfleet.settings import Settings
from modfleet.stream.transport import use_fetch_wait


def build_app(argv: list[str]) -> faust.App:
    source, port = argv
    settings = Settings()
    sink = settings.decisions_topic
    app = faust.App(
        settings.consumer_group,
        broker=settings.broker_url,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        store="memory://",
        autodiscover=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=int(port),
        producer_max_request_size=settings.producer_max_request_bytes,
        producer_compression_type=compression_type(settings),
        key_serializer="raw",
        value_serializer="raw",
    )
    use_fetch_wait(app, settings.consumer_fetch_max_wait_ms)
    posts = app.topic(*source.split(","), key_type=bytes, value_type=bytes)
    forwarded = [0]

    async def passthrough(stream: faust.StreamT[bytes]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max, within=settings.batch_within_s
        )
        async for events in batches:
            futures = [
                await app.producer.send(sink, e.message.key, e.message.value, None, None, None)
                for e in events
            ]
            await asyncio.gather(*futures)
            forwarded[0] += len(events)

    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    async def count(web: Any, request: Any) -> Any:
        return web.json({"forwarded": forwarded[0]})

    app.agent(posts, name="passthrough")(passthrough)
    app.page("/health")(health)
    app.page("/count")(count)
    return app


if __name__ == "__main__":
    faust.Worker(
        build_app(sys.argv[1:]), loglevel="warning", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()
