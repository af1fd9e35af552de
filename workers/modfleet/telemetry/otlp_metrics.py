"""The worker's metrics over OTLP as well, for fleets whose collector takes OTLP, not scrapes.

The Prometheus registry stays the one source of truth: every family in it is mirrored as an
observable OpenTelemetry instrument that reads the registry at export time, so the two views
never disagree and the hot path updates one set of counters only. Histograms are exported as
their ``_count`` and ``_sum`` (OpenTelemetry has no observable histogram).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from modfleet.metrics import Metrics
from modfleet.settings import Settings

Callback = Callable[[CallbackOptions], Iterable[Observation]]


def start_otlp_metrics(
    settings: Settings, metrics: Metrics, reader: MetricReader | None = None
) -> MeterProvider | None:
    """Export ``metrics`` over OTLP/HTTP when tracing export is on; tests pass a reader."""
    if reader is None:
        if not settings.otel_enabled:
            return None
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=settings.otel_exporter_otlp_metrics_endpoint)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=15_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": settings.otel_service_name}),
        metric_readers=[reader],
    )
    _mirror(metrics.registry, provider)
    return provider


def _mirror(registry: CollectorRegistry, provider: MeterProvider) -> None:
    meter = provider.get_meter("modfleet")
    for family in registry.collect():
        if family.type == "counter":
            meter.create_observable_counter(
                f"{family.name}_total", [_reader(registry, f"{family.name}_total")],
                description=family.documentation,
            )  # fmt: skip
        elif family.type == "gauge":
            meter.create_observable_gauge(
                family.name, [_reader(registry, family.name)], description=family.documentation
            )
        elif family.type == "histogram":
            for suffix in ("_count", "_sum"):
                meter.create_observable_counter(
                    family.name + suffix, [_reader(registry, family.name + suffix)],
                    description=family.documentation,
                )  # fmt: skip


def _reader(registry: CollectorRegistry, sample_name: str) -> Callback:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(sample.value, dict(sample.labels))
            for family in registry.collect()
            for sample in family.samples
            if sample.name == sample_name
        ]

    return observe
