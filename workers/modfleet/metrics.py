"""Counters the worker exposes on its /metrics endpoint (Prometheus text format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_BYTES_BUCKETS = tuple(4**n for n in range(5, 16))  # 1 KiB to 1 GiB


class Metrics:
    """One registry per worker, so that tests can run several side by side."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.posts_consumed = Counter("modfleet_posts_consumed", "Post records read.", registry=r)
        self.decisions = Counter("modfleet_decisions", "Decisions emitted.", ["action"], registry=r)
        self.escalations = Counter(
            "modfleet_escalations", "Escalations emitted.", ["reason"], registry=r
        )
        self.dead_letters = Counter(
            "modfleet_dead_letters", "Records dead-lettered.", ["reason"], registry=r
        )
        self.shadow_decisions = Counter(
            "modfleet_shadow_decisions",
            "Decisions of shadow policies (never enforced).",
            ["policy", "action"],
            registry=r,
        )
        self.policy_reloads = Counter(
            "modfleet_policy_reloads", "Policy reloads by result.", ["result"], registry=r
        )
        self.cache_hits = Counter("modfleet_cache_hits", "Verdicts served from Redis.", registry=r)
        self.cache_misses = Counter("modfleet_cache_misses", "Verdicts not in Redis.", registry=r)
        self.cache_errors = Counter(
            "modfleet_cache_errors", "Redis calls that failed.", ["op"], registry=r
        )
        self.cache_up = Gauge("modfleet_cache_up", "1 when Redis answered last time.", registry=r)
        self.model_down = Gauge(
            "modfleet_model_down",
            "1 while the worker holds a batch: its model is not answering.",
            registry=r,
        )
        self.html_renderer_down = Gauge(
            "modfleet_html_renderer_down",
            "1 while the worker holds a batch: its HTML renderer does not start.",
            registry=r,
        )
        # What a held batch waits for (BackendDown.waits_for) -> its gauge.
        self.down = {"model": self.model_down, "html_renderer": self.html_renderer_down}
        self.cache_rejected = Counter(
            "modfleet_cache_rejected",
            "Cached verdicts not used (reclassified): unsealed, bad_seal, unreadable, shape.",
            ["reason"],
            registry=r,
        )
        self.cache_skipped = Counter(
            "modfleet_cache_skipped",
            "Redis calls skipped while its breaker was open (slow or down).",
            ["op"],
            registry=r,
        )
        self.inflight_dedup = Counter(
            "modfleet_inflight_duplicates",
            "Posts whose text was already being classified in the same batch.",
            registry=r,
        )
        self.text_windows = Counter(
            "modfleet_text_windows",
            "Windows asked of texts over their pack's max_text_chars beyond the first of each: "
            "the model calls that long posts cost.",
            registry=r,
        )
        self.html_renderer_failures = Counter(
            "modfleet_html_renderer_failures",
            "Times the HTML renderer's child crashed, hung or answered garbage (each costs a new "
            "child, and the batch asked a post at a time): kind is crash, hang or garbage.",
            ["kind"],
            registry=r,
        )
        self.read_alone = Counter(
            "modfleet_posts_read_alone",
            "Posts read a post at a time because a worker died with them in hand (the crash "
            "journal); a post it died on alone again is dead-lettered internal_error.",
            registry=r,
        )
        self.inference_retries = Counter(
            "modfleet_inference_retries", "Inference calls tried again.", registry=r
        )
        self.batch_size = Histogram(
            "modfleet_batch_size", "Posts per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_bytes = Histogram(
            "modfleet_batch_bytes",
            "Bytes of posts (value, key and headers) per micro-batch; held_post_bytes bounds it.",
            buckets=_BYTES_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "modfleet_inference_seconds",
            "Time of one inference call.",
            ["backend", "model"],
            registry=r,
        )
        self.inference_in_flight = Gauge(
            "modfleet_inference_in_flight", "Inference calls under way.", registry=r
        )
        self.decision_labels = Counter(
            "modfleet_decision_labels", "Categories flagged in decisions.", ["category"], registry=r
        )
        self.batch_wait = Histogram(
            "modfleet_batch_wait_seconds",
            "Time the agent waited for a micro-batch to fill.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "modfleet_end_to_end_seconds",
            "Post produced (record timestamp) to its outcome delivered.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "modfleet_consumer_lag",
            "Records behind the partition's end after the last batch.",
            ["topic", "partition"],
            registry=r,
        )
        # Exported by the `modfleet reviews` process (reviews joined with decisions).
        self.reviews = Counter(
            "modfleet_reviews",
            "Reviews read, by result: joined, pending, unknown, duplicate, mismatch, invalid, "
            "not_final.",
            ["result"],
            registry=r,
        )
        self.review_outcomes = Counter(
            "modfleet_review_outcomes",
            "Reviewed decisions by the decision's action and whether the reviewer upheld it.",
            ["action", "outcome", "policy_digest", "model", "stage"],
            registry=r,
        )
        self.review_verdicts = Counter(
            "modfleet_review_verdicts",
            "Per category: flagged by the model (true/false) against the reviewer's verdict.",
            ["category", "flagged", "violates"],
            registry=r,
        )
        self.review_join_decisions = Gauge(
            "modfleet_review_join_decisions", "Decisions held to join reviews with.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
