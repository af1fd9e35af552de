"""The one reader of the environment.

Every knob of the fleet is a field here; the environment variable is the field name upper-cased
with the ``MODFLEET_`` prefix (``batch_max`` -> ``MODFLEET_BATCH_MAX``). Compose files and the Helm
chart set exactly these names, and tests check that they do; any other ``MODFLEET_`` name is
refused, as a misspelling would otherwise be ignored.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modfleet.resources import default_policy_path

ENV_PREFIX = "MODFLEET_"
# scripts/test's own knobs, read by the test suite, never by a modfleet process.
_NOT_SETTINGS = ("MODFLEET_TEST_", "MODFLEET_SKIP_VLLM")
# A tenant's name, as post.v1 has it (topics/schemas/post.v1.schema.json): settings and packs.
TENANT_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ClassifierBackend = Literal["embedded", "openai", "vllm", "cascade"]
InferenceAdapter = Literal["gpt-oss-safeguard", "llama-guard-3", "llama-guard-4", "qwen3guard"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]


class Settings(BaseSettings):
    """Frozen runtime settings of a modfleet process."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    broker_url: str = Field(
        "kafka://localhost:9092",
        description="Kafka bootstrap servers as faust URLs, ';'-separated (kafka://host:port).",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="How the worker talks to the brokers."
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    consumer_group: str = Field(
        "modfleet-worker",
        min_length=1,
        max_length=249,
        description="Consumer group (and faust app id) that stream workers share.",
    )
    broker_session_timeout_s: float = Field(
        30.0,
        ge=1.0,
        le=300.0,
        description="Kafka group session timeout; the embedded stack sets about 6 s (see README).",
    )
    broker_heartbeat_interval_s: float = Field(
        3.0, ge=0.1, le=60.0, description="Kafka group heartbeat interval."
    )
    consumer_fetch_max_wait_ms: int = Field(
        500,
        ge=10,
        le=30_000,
        description="Longest a fetch of posts waits for records (faust's own is 1,500 ms, Kafka's "
        "consumer default 500). Apache Kafka answers a fetch as soon as records arrive; a broker "
        "that does not holds them this long. The embedded stack's broker is one: it runs with "
        "100 ms unless this is set, which cut p50 latency there from about 300 ms to 60 "
        "(docs/benchmarks.md).",
    )
    posts_topic: str = Field("modfleet.posts.v1", description="Topic the posts arrive on.")
    decisions_topic: str = Field("modfleet.decisions.v1", description="Topic of decisions.")
    escalations_topic: str = Field(
        "modfleet.escalations.v1", description="Topic of posts sent to human review."
    )
    dead_letter_topic: str = Field(
        "modfleet.dead-letter.v1", description="Topic of input that could not be decided."
    )
    shadow_decisions_topic: str = Field(
        "modfleet.shadow-decisions.v1",
        description="Topic of shadow policies' decisions; enforcement never reads it.",
    )
    reviews_topic: str = Field(
        "modfleet.reviews.v1", description="Topic of human reviewers' outcomes (review tools)."
    )
    reviews_join_max_decisions: int = Field(
        1_000_000,
        ge=1,
        le=100_000_000,
        description="Most decisions `modfleet reviews` holds for their reviews; oldest go first.",
    )
    reviews_join_ttl_s: float = Field(
        1_209_600.0,
        gt=0,
        description="How long `modfleet reviews` holds a decision for its review (escalations' "
        "retention).",
    )
    export_opted_out_tenants: str = Field(
        "",
        description="Comma-separated tenants whose text `modfleet export training` never writes; "
        "each a tenant name as posts carry it, else the settings are refused.",
    )

    @field_validator("export_opted_out_tenants")
    @classmethod
    def _opted_out_are_tenant_names(cls, value: str) -> str:
        # A list written with ';' or spaces would read as one unknown tenant and opt out nobody.
        for entry in (e.strip() for e in value.split(",")):
            if entry and not TENANT_NAME.fullmatch(entry):
                raise ValueError(
                    f"{entry!r} is not a tenant name (1 to 128 letters, digits, '.', '_' or "
                    "'-'); separate tenants with ','"
                )
        return value

    # --- Redis verdict cache ------------------------------------------------------------------
    redis_url: SecretStr = Field(
        SecretStr("redis://localhost:6379/0"),
        description="Redis URL (rediss:// for TLS); may carry credentials, hence secret.",
    )
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password.")
    redis_ssl_ca_certs: Path | None = Field(None, description="CA bundle for rediss:// URLs.")
    redis_timeout_s: float = Field(
        1.0, gt=0.0, le=30.0, description="Per-command Redis timeout; past it the cache is skipped."
    )
    cache_enabled: bool = Field(True, description="Look verdicts up in Redis before inference.")
    cache_ttl_s: int = Field(
        86_400, ge=1, le=30 * 86_400, description="Lifetime of a cached verdict in seconds."
    )
    cache_hmac_key: SecretStr | None = Field(
        None,
        description="Secret (16+ characters) that seals cached verdicts (keyed BLAKE2b), the "
        "same on every worker; unset: the cache is not used. `modfleet dev` generates one.",
    )
    cache_budget_s: float = Field(
        0.075,
        gt=0.0,
        le=5.0,
        description="Longest a batch waits for one Redis call; past it the cache is skipped "
        "and probed in the background until it answers again.",
    )
    cache_probe_interval_s: float = Field(
        1.0, gt=0.0, le=60.0, description="How often a skipped or idle cache is probed (PING)."
    )

    # --- Micro-batching and retries -------------------------------------------------------------
    batch_max: int = Field(
        512,
        ge=1,
        le=10_000,
        description="Most posts in one micro-batch. A batch fills to this when posts arrive "
        "faster than batch_max per batch_within_s, or while a lag drains (see "
        "batch_backlog_within_s); then a larger one spreads each batch's "
        "fixed costs (a Redis round trip, a record batch per partition, the model's call) over "
        "more posts: 512 against 256 cost about 20 us of CPU a post less with the embedded model "
        "(docs/benchmarks.md).",
    )
    batches_in_flight: int = Field(
        2,
        ge=1,
        le=64,
        description=(
            "Micro-batches worked on at once: the next batch's cache lookups and inference "
            "overlap the last one's broker acknowledgements, and more keep an LLM server's "
            "continuous batching busy. Batches still deliver and commit in the order taken, "
            "so a post's records are decided in order; each one more holds another batch in "
            "memory."
        ),
    )
    held_post_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="Most bytes of posts (value, key and headers) the worker holds in its "
        "micro-batches, taken and not yet acked. A batch is cut short when the next post would "
        "pass it, so memory follows this, not the size of the posts a producer chose; one post "
        "larger than it is taken alone. A post in hand costs about twice its bytes (its bytes "
        "and its decoded text).",
    )
    stream_buffer_bytes: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        le=16 * 1024 * 1024 * 1024,
        description="Most bytes of posts faust fetches ahead of the batches into its buffer; "
        "past 80% of it (or of its 4,096 posts) faust stops fetching a partition. Small posts "
        "reach the count first, large ones this.",
    )
    batch_within_s: float = Field(
        0.05, gt=0.0, le=10.0, description="Longest wait to fill a micro-batch, in seconds."
    )
    batch_backlog_within_s: float = Field(
        0.25,
        ge=0.0,
        le=10.0,
        description="Under a backlog (when batch_within_s runs out and the records on the "
        "broker behind the batch would fill it), how much longer a batch waits for them, in "
        "seconds: full batches spread a batch's fixed costs over batch_max posts while a lag "
        "drains. Posts that trickle in never wait for it. 0: batches leave at batch_within_s.",
    )
    classify_attempts: int = Field(
        3, ge=1, le=10, description="Tries of one batch's inference before posts are isolated."
    )
    classify_timeout_s: float = Field(
        120.0,
        gt=0.0,
        le=3600.0,
        description="Longest one inference call (a micro-batch) may take before a retry.",
    )
    retry_backoff_s: float = Field(
        0.2, ge=0.0, le=30.0, description="First retry delay; doubles on each further try."
    )
    shutdown_grace_s: float = Field(
        30.0, ge=1.0, le=600.0, description="On SIGTERM, time to finish the batches in hand."
    )
    loop_stall_exit_s: float | None = Field(
        60.0,
        ge=1.0,
        le=3600.0,
        description="End the worker (exit status 1, every thread's stack on stderr) when its "
        "event loop has not turned for this long: a post that hangs a parser holding the GIL "
        "stops /health too, and without an orchestrator's liveness probe (docker-compose does "
        "not restart an unhealthy container) the worker would hold its partitions forever. With "
        "the crash journal, the restart reads that batch a post at a time. Unset: never.",
    )
    emit_attempts: int = Field(
        5, ge=1, le=100, description="Tries to deliver one batch's output before the worker stops."
    )
    crash_journal_path: Path | None = Field(
        None,
        description="File where the worker notes the offsets it holds before it reads them, so "
        "that after a death the reading alone can find (a native crash, an out-of-memory kill, a "
        "hang the liveness probe ends), its restart reads those offsets a post at a time and "
        "dead-letters, unread, a post it died on alone. Put it where a restart finds it (the "
        "chart uses the pod's /tmp emptyDir); unset, a poison post crashes every worker that "
        "reads it. With the cache on, what a restart learned is shared through Redis with "
        "every worker of the group.",
    )
    # --- Hostile input and output limits (every output fits the broker by construction) -----
    max_post_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description=(
            "Largest post value read (after decompression); larger ones are dead-lettered "
            "'too_large' without being parsed."
        ),
    )
    max_batch_inflated_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        le=16 * 1024 * 1024 * 1024,
        description=(
            "Most bytes one compressed record batch of posts may inflate to. The broker bounds "
            "a batch as sent, compressed (max.message.bytes, 1 MiB by default), and text "
            "compresses 3-10 times, while a crafted batch of 1 MiB inflates to gigabytes. A "
            "batch past this is not read: each of its offsets is dead-lettered 'too_large' "
            "(past 10,000 offsets, the last letter stands for the rest) and its partition moves "
            "on. At least max_post_bytes. A worker may hold this much for each partition whose "
            "batch it is reading. The commands that read topics beside the worker (reviews run "
            "and report, replay, export, shadow report) keep the same bound and report such "
            "offsets as not read."
        ),
    )
    producer_compression: Compression = Field(
        "snappy",
        description="Codec of the record batches the worker writes. A decision is JSON that "
        "compresses several times over, and the broker stores, copies and serves every byte. "
        "snappy costs the worker about 7 us of CPU a post less than zstd with the broker's CPU "
        "about the same (docs/benchmarks.md); zstd stores about half the bytes of snappy. "
        "Every maintained Kafka client reads both; `none` for one that cannot.",
    )
    producer_max_request_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="The producer's max_request_size; bounds every output record.",
    )
    broker_max_message_bytes: int = Field(
        1_048_588,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="The brokers' (or output topics') max.message.bytes; bounds every output.",
    )
    escalation_text_max_bytes: int = Field(
        256 * 1024,
        ge=1024,
        le=32 * 1024 * 1024,
        description=(
            "Post text carried by an escalation (UTF-8 bytes); longer text is cut with "
            "text_truncated and a reference to the post record."
        ),
    )
    dead_letter_originals: bool = Field(
        False,
        description=(
            "Also carry the original post in dead-letters of modfleet's own failures "
            "(inference_failed, internal_error, undeliverable); invalid input always carries it."
        ),
    )

    # --- Model and policy ---------------------------------------------------------------------
    classifier_backend: ClassifierBackend | None = Field(
        None,
        description=(
            "Unset: each policy pack's model.backend scores its posts. Set: this backend scores "
            "every pack's posts ('embedded' is the CPU model shipped with us; 'openai' an "
            "OpenAI-compatible server; 'vllm' an in-process vLLM engine (modfleet[gpu]); "
            "'cascade' the embedded model first, then the LLM for uncertain posts)."
        ),
    )

    @field_validator("classifier_backend", mode="before")
    @classmethod
    def _empty_backend_is_unset(cls, value: object) -> object:
        # docker-compose passes an unset variable as "" ("${VAR:-}").
        return None if value == "" else value

    classifier_plugin: str | None = Field(
        None,
        description="Third-party backend as 'package.module:factory'; overrides the backend.",
    )
    policy_path: Path = Field(
        default_factory=default_policy_path,
        description="Policy pack file (YAML), or a folder of packs (per tenant, live and shadow).",
    )
    policy_reload_interval_s: float = Field(
        5.0, gt=0.0, le=3600.0, description="How often the worker looks for changed policy files."
    )
    embedded_models_dir: Path | None = Field(
        None,
        description="Folder of embedded model folders: a pack with model id "
        "modfleet-embedded@VERSION is scored by VERSION/ in it (a retrained model as a shadow).",
    )

    # --- LLM inference tier: openai / vllm / cascade backends (issue 3) -------------------------
    inference_urls: str = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible base URLs (.../v1), ';'-separated; load spreads over them.",
    )
    inference_model: str = Field(
        "openai/gpt-oss-safeguard-20b",
        min_length=1,
        description="Model name sent to the server, or loaded by the in-process vLLM engine.",
    )
    inference_adapter: InferenceAdapter = Field(
        "gpt-oss-safeguard", description="Prompt format and answer parser of the model family."
    )
    inference_api_key: SecretStr | None = Field(None, description="Bearer token for the servers.")
    inference_max_in_flight: int = Field(
        64, ge=1, le=4096, description="Most requests in flight per worker (the GPU's batch)."
    )
    inference_timeout_s: float = Field(
        30.0, gt=0.0, le=600.0, description="Deadline of one inference request, in seconds."
    )
    inference_attempts: int = Field(
        3, ge=1, le=10, description="Tries of one request on retryable errors (429, 5xx, network)."
    )
    inference_backoff_s: float = Field(
        0.2, ge=0.0, le=30.0, description="Backoff ceiling of the first retry (full jitter)."
    )
    inference_max_tokens: int | None = Field(
        None, ge=1, le=65_536, description="Answer token limit; unset: the adapter's own."
    )
    inference_response_format: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        description="Structured-output flavour: 'json_schema' (vLLM, OpenAI), 'json_object' "
        "with a schema (llama-cpp-python's server).",
    )
    inference_breaker_failures: int = Field(
        5, ge=1, le=1000, description="Consecutive failures that open a server's circuit."
    )
    inference_breaker_reset_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="Seconds a circuit stays open before one probe."
    )
    inference_cache_salt: SecretStr | None = Field(
        None,
        description="Mixed into vLLM's cache_salt, which is per pack and tenant already: "
        "requests share prefix-cache blocks only within one tenant's posts under one pack of "
        "one deployment.",
    )
    inference_keep_reasoning: bool = Field(
        False, description="Append the model's reasoning to the decision's rationale."
    )
    cascade_llm_backend: Literal["openai", "vllm"] = Field(
        "openai", description="Second stage of the cascade backend."
    )
    cascade_band_low: float = Field(
        0.15, ge=0.0, le=1.0, description="Embedded scores below this are decided by it alone."
    )
    cascade_band_high: float = Field(
        0.85, ge=0.0, le=1.0, description="Embedded scores above this are decided by it alone."
    )
    vllm_gpu_memory_utilization: float = Field(
        0.9, gt=0.0, le=1.0, description="Share of GPU memory the in-process engine may take."
    )
    vllm_max_model_len: int | None = Field(
        None, ge=256, description="Context length of the in-process engine; unset: the model's."
    )
    vllm_enable_prefix_caching: bool = Field(
        True, description="Automatic prefix caching of the in-process engine (the policy prefix)."
    )
    vllm_tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs per engine.")
    vllm_kv_cache_gib: float | None = Field(
        None,
        gt=0.0,
        le=4096.0,
        description="KV cache of the in-process engine, GiB; unset: vllm_gpu_memory_utilization "
        "of the GPU, or 1 GiB on a CPU (where that share would be of the node's RAM).",
    )
    vllm_enforce_eager: bool | None = Field(
        None,
        description="Skip graph compilation (quicker start, slower steps); unset: on CPU only.",
    )
    inference_tiktoken_dir: Path | None = Field(
        None,
        description="Folder holding o200k_base.tiktoken, gpt-oss's harmony vocabulary, for "
        "nodes without internet; unset: the model folder if it holds it, else downloaded.",
    )
    # --- end of the LLM inference tier block ---------------------------------------------------

    # --- Process ------------------------------------------------------------------------------
    web_host: str = Field(
        "127.0.0.1", description="Bind address of the health and metrics endpoint."
    )
    web_port: int = Field(6066, ge=1, le=65_535, description="Port of health and metrics.")
    log_level: LogLevel = Field("INFO", description="Log level of the worker.")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line, for log pipelines."
    )
    log_post_text: bool = Field(
        False, description="Allow post text in logs (debugging only; it is user content)."
    )

    # --- Telemetry ----------------------------------------------------------------------------
    otel_enabled: bool = Field(False, description="Export traces over OTLP/HTTP.")
    otel_exporter_otlp_endpoint: str = Field(
        "http://localhost:4318/v1/traces", description="OTLP/HTTP traces endpoint."
    )
    otel_exporter_otlp_metrics_endpoint: str = Field(
        "http://localhost:4318/v1/metrics",
        description="OTLP/HTTP metrics endpoint (metrics stay on /metrics too).",
    )
    otel_service_name: str = Field("modfleet-worker", description="service.name of the spans.")
    otel_sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of new traces kept (parent decisions win)."
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "kafka_security_protocol is SASL_* but kafka_sasl_username or "
                "kafka_sasl_password is missing"
            )
        return self

    @model_validator(mode="after")
    def _batches_hold_a_post(self) -> Settings:
        if self.max_batch_inflated_bytes < self.max_post_bytes:
            raise ValueError(
                "max_batch_inflated_bytes must be at least max_post_bytes: a batch holding one "
                "post of the largest size read must be read"
            )
        return self

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        # pydantic-settings passes over a prefixed name that is no field, so a misspelt one in
        # a chart or compose file would leave the default in force without a word.
        known = env_names()
        unknown = sorted(
            name.upper()
            for name in os.environ
            if name.upper().startswith(ENV_PREFIX)
            and name.upper() not in known
            and not name.upper().startswith(_NOT_SETTINGS)
        )
        if unknown:
            named = ", ".join(_with_hint(name, known) for name in unknown)
            raise ValueError(
                f"{named}: not a setting, so it would be ignored; docs/settings.md lists them"
            )
        return self

    @model_validator(mode="after")
    def _cascade_band_ordered(self) -> Settings:
        if self.cascade_band_low > self.cascade_band_high:
            raise ValueError("cascade_band_low must not be above cascade_band_high")
        return self

    @property
    def inference_url_list(self) -> tuple[str, ...]:
        """The inference servers' base URLs."""
        return tuple(u.strip() for u in self.inference_urls.split(";") if u.strip())

    @property
    def bootstrap_servers(self) -> list[str]:
        """Broker addresses in host:port form, for plain aiokafka clients."""
        return [u.strip().removeprefix("kafka://") for u in self.broker_url.split(";") if u.strip()]


def _with_hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return f"{name} (did you mean {close[0]}?)" if close else name


def env_names() -> set[str]:
    """Every environment variable name Settings reads."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}
