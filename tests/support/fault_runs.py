"""A real worker process with a fault injected (``faults.py``), and what its tests read back."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from faults import POISON
from posts import encode, post, unique_texts

from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.dev import settings_env
from modfleet.stack.services import stop_process

FAULTS = Path(__file__).parent / "faults.py"


@contextlib.contextmanager
def faulty_worker(settings: Settings, step: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **settings_env(settings)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(FAULTS), step], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        stop_process(proc, timeout_s=20)


def batch(count: int, prefix: str) -> tuple[list[bytes], set[str]]:
    texts = unique_texts(count, seed=len(prefix))
    made = [post(f"{prefix}-{i}", t) for i, t in enumerate(texts)]
    made[count // 3] = post(f"{prefix}-poison", f"a post carrying {POISON}")
    return [encode(p) for p in made], {p["post_id"] for p in made}


async def committed(settings: Settings) -> int | None:
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(settings.posts_topic, 0))
        return offset
    finally:
        await consumer.stop()
