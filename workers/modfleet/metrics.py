"""Counters the worker exposes on its /metrics endpoint (Prometheus text format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """One registry per worker, so that tests can run several side by side."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.posts_consumed = Counter("modfleet_posts_consumed", "Post records read.", registry=r)
        self.decisions = Counter(
            "modfleet_decisions", "Decisions emitted.", ["action"], registry=r
        )
        self.escalations = Counter(
            "modfleet_escalations", "Escalations emitted.", ["reason"], registry=r
        )
        self.dead_letters = Counter(
            "modfleet_dead_letters", "Records dead-lettered.", ["reason"], registry=r
        )
        self.cache_hits = Counter("modfleet_cache_hits", "Verdicts served from Redis.", registry=r)
        self.cache_misses = Counter("modfleet_cache_misses", "Verdicts not in Redis.", registry=r)
        self.cache_errors = Counter(
            "modfleet_cache_errors", "Redis calls that failed.", ["op"], registry=r
        )
        self.cache_up = Gauge("modfleet_cache_up", "1 when Redis answered last time.", registry=r)
        self.inflight_dedup = Counter(
            "modfleet_inflight_duplicates",
            "Posts whose text was already being classified in the same batch.",
            registry=r,
        )
        self.inference_retries = Counter(
            "modfleet_inference_retries", "Inference calls tried again.", registry=r
        )
        self.batch_size = Histogram(
            "modfleet_batch_size", "Posts per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "modfleet_inference_seconds", "Time of one inference call.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
