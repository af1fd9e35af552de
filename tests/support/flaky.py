"""Classifier plugins that fail on purpose, loaded by a real worker through
MODFLEET_CLASSIFIER_PLUGIN to show that failures lose no post."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from modfleet.errors import RecoverableError
from modfleet.inference.base import Classifier, Verdict
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.policy import Policy
from modfleet.settings import Settings

POISON = "this text always breaks the model"


class FailsOnce(Classifier):
    """The real embedded model, except that its first call raises."""

    def __init__(self) -> None:
        self.inner = EmbeddedClassifier()
        self.model_id = self.inner.model_id
        self.calls = 0

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.calls += 1
        if self.calls == 1:
            raise RecoverableError("injected failure on the first batch")
        return await self.inner.classify(texts, policy)


class BreaksOnPoison(FailsOnce):
    """Fails every call whose batch holds the POISON text."""

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.calls += 1
        if POISON in texts:
            raise RecoverableError("injected failure: poison text")
        return await self.inner.classify(texts, policy)


def fails_once(settings: Settings) -> Classifier:
    return FailsOnce()


def breaks_on_poison(settings: Settings) -> Classifier:
    return BreaksOnPoison()


class HalfBroken(FailsOnce):
    """Fails half of all calls and hangs on one in ten, as an overloaded model server does."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(5)

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.calls += 1
        roll = self.rng.random()
        if roll < 0.1:
            await asyncio.sleep(3600)  # past any timeout: the pipeline must give up on it
        if roll < 0.5:
            raise RecoverableError("injected failure: server busy")
        return await self.inner.classify(texts, policy)


def half_broken(settings: Settings) -> Classifier:
    return HalfBroken()


def outage_flag(settings: Settings) -> Path:
    """While this file exists, the ``down_while_flagged`` model of that worker is down."""
    return Path(tempfile.gettempdir()) / f"modfleet-outage-{settings.consumer_group}"


class DownWhileFlagged(Classifier):
    """The real embedded model behind a switch: every call fails while the flag file exists,
    as a model server does when it is stopped (connection refused)."""

    def __init__(self, flag: Path) -> None:
        self.inner = EmbeddedClassifier()
        self.model_id = f"switched/{self.inner.model_id}"
        self.flag = flag

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if self.flag.exists():
            raise RecoverableError("injected outage: connection refused")
        return await self.inner.classify(texts, policy)


def down_while_flagged(settings: Settings) -> Classifier:
    return DownWhileFlagged(outage_flag(settings))


SLOW = "SLOW-TO-JUDGE"


class SlowOnMarker(Classifier):
    """The real embedded model, taking a second over any call whose texts hold SLOW: a batch
    that finishes its work after the batch taken behind it."""

    def __init__(self) -> None:
        self.inner = EmbeddedClassifier()
        self.model_id = self.inner.model_id

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if any(SLOW in t for t in texts):
            await asyncio.sleep(1.0)
        return await self.inner.classify(texts, policy)


def slow_on_marker(settings: Settings) -> Classifier:
    return SlowOnMarker()
