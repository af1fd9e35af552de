"""Metrics mirrored over OTLP read the same numbers /metrics shows."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from modfleet.metrics import Metrics
from modfleet.settings import Settings
from modfleet.telemetry.otlp_metrics import start_otlp_metrics


def points(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], float]:
    data = reader.get_metrics_data()
    assert data is not None
    out = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    labels = tuple(sorted((point.attributes or {}).items()))
                    out[(metric.name, labels)] = point.value  # type: ignore[union-attr]
    return out


def test_otlp_mirrors_the_prometheus_registry() -> None:
    metrics = Metrics()
    reader = InMemoryMetricReader()
    provider = start_otlp_metrics(Settings(), metrics, reader)
    assert provider is not None
    metrics.posts_consumed.inc(7)
    metrics.dead_letters.labels(reason="not_json").inc(2)
    metrics.cache_up.set(1)
    metrics.batch_size.observe(64)

    seen = points(reader)
    assert seen[("modfleet_posts_consumed_total", ())] == 7
    assert seen[("modfleet_dead_letters_total", (("reason", "not_json"),))] == 2
    assert seen[("modfleet_cache_up", ())] == 1
    assert seen[("modfleet_batch_size_count", ())] == 1
    assert seen[("modfleet_batch_size_sum", ())] == 64
    provider.shutdown()


def test_off_unless_configured() -> None:
    assert start_otlp_metrics(Settings(otel_enabled=False), Metrics()) is None
