"""`modfleet export training` as its user runs it: options honoured, settings checked, and a
broker that cannot be reached a one-line error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import modfleet.export.collect as collect
from modfleet.cli import main
from modfleet.reviews.read import Record, Window
from modfleet.settings import Settings


def _export(out: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["export", "training", "--out", str(out), *args])


def test_idle_applies_to_every_topic_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cluster that answers slowly needs a longer quiet than 3 s before each read ends.
    reads: list[tuple[str, float]] = []

    async def empty_topic(
        settings: Settings, topic: str, window: Window, idle_s: float = 3.0, limit_s: float = 3600.0
    ) -> AsyncIterator[Record]:
        reads.append((topic, idle_s))
        for record in ():
            yield record

    monkeypatch.setattr(collect, "read_topic", empty_topic)
    result = _export(tmp_path / "out", "--idle", "30")
    assert result.exit_code == 0, result.output
    settings = Settings()
    assert sorted(reads) == sorted(
        (topic, 30.0)
        for topic in (settings.decisions_topic, settings.reviews_topic, settings.posts_topic)
    )


def test_a_broker_that_cannot_be_reached_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODFLEET_BROKER_URL", "kafka://127.0.0.1:1")
    result = _export(tmp_path / "out", "--idle", "1")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "modfleet: cannot read from the broker at 127.0.0.1:1" in result.stderr
    assert "KafkaConnectionError" in result.stderr


def test_an_opt_out_list_with_a_wrong_separator_is_refused_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read as one tenant named "quiet-tenant;hush-co", it would export both tenants' text.
    monkeypatch.setenv("MODFLEET_EXPORT_OPTED_OUT_TENANTS", "quiet-tenant;hush-co")
    read: list[Any] = []
    monkeypatch.setattr(collect, "read_topic", lambda *a, **k: read.append(a))
    result = _export(tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "export_opted_out_tenants" in result.stderr
    assert "'quiet-tenant;hush-co'" in result.stderr
    assert read == []
    assert not (tmp_path / "out").exists()
