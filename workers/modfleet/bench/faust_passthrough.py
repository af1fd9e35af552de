"""Stage (b): a faust app that forwards posts with no work, run as its own process.

It is configured like the stream worker: built by the same ``faust_app`` (faust's options,
fetch wait, compression), with faust's own ``take_events`` batching (the worker's fills its
batches while a lag drains: ``stream/take.py``) and the same wait for the broker's acks before
a batch is done, minus everything modfleet does to a post, so that the worker's rate over this
one's is the cost of our own code.

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

from modfleet.settings import Settings
from modfleet.stream.faust_app import faust_app


def build_app(argv: list[str]) -> faust.App:
    source, port = argv
    settings = Settings().model_copy(update={"web_host": "127.0.0.1", "web_port": int(port)})
    sink = settings.decisions_topic
    app = faust_app(settings)
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
