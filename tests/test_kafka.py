"""Kafka options from Settings: the worker's producer compresses what it writes, as configured."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker


@pytest.mark.parametrize(
    ("codec", "faust_sees"), [("snappy", "snappy"), ("zstd", "zstd"), ("none", None)]
)
def test_the_workers_producer_writes_with_the_configured_codec(
    make_settings: Callable[..., Settings], codec: str, faust_sees: str | None
) -> None:
    worker = StreamWorker(make_settings(producer_compression=codec))
    assert worker.app.conf.producer_compression_type == faust_sees


def test_outputs_are_snappy_compressed_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MODFLEET_PRODUCER_COMPRESSION", raising=False)
    assert Settings().producer_compression == "snappy"
    monkeypatch.setenv("MODFLEET_PRODUCER_COMPRESSION", "brotli")
    with pytest.raises(ValidationError, match="producer_compression"):
        Settings()
