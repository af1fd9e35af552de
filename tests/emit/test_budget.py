"""Every output fits the broker, whatever the post record holds: sizes by construction."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import example, given
from hypothesis import strategies as st

from modfleet.contracts.schemas import violations
from modfleet.emit import (
    Budget,
    dead_letter,
    dead_letter_message,
    escalation_message,
    minimal_dead_letter,
)
from modfleet.emit.budget import KEY_LIMIT, TRACEPARENT_LENGTH, record_overhead
from modfleet.emit.dead_letter import ORIGINAL_LIMIT
from modfleet.emit.messages import (
    Decided,
    PackFields,
    carried_headers,
    decision_message,
    iso_time,
    trace_context,
)
from modfleet.inference import Verdict
from modfleet.ingest import Record
from modfleet.ingest.decode import Rejection
from modfleet.kafka import compression_type
from modfleet.policy import Judgement, load_policy
from modfleet.settings import Settings

BUDGET = Budget(record_bytes=1024 * 1024, escalation_text_bytes=256 * 1024)
POLICY = load_policy(Settings().policy_path)
PACK = PackFields.of(POLICY, "m")


def weight(message: object) -> int:
    key, value, headers = message.key, message.value, message.headers  # type: ignore[attr-defined]
    return len(value) + record_overhead(key, headers)


def decided(text: str, produced_at: float | None = 1.7e9, record: Record | None = None) -> Decided:
    return Decided(
        post_id="p-1",
        tenant="acme",
        original_text=text,
        content_hash="0" * 64,
        truncated=False,
        verdict=Verdict(scores={"offensive": 0.9}),
        scores={"harassment": 0.9},
        judgement=Judgement(action="escalate", labels=("harassment",), per_category={}),
        from_cache=False,
        produced_at=produced_at,
        trace_id="1" * 32,
        headers=(("content-type", b"application/json"),),
        source=record or Record("posts", 3, 42, produced_at, b"p-1", b"{}"),
    )


def test_an_escalation_of_a_2_mib_text_fits_and_points_at_the_whole_post() -> None:
    text = "you are vile " * 200_000  # 2.6 MB
    message = escalation_message(decided(text), PACK, "esc", "policy_threshold", BUDGET)
    body = orjson.loads(message.value)
    assert weight(message) <= BUDGET.record_bytes
    assert body["text_truncated"] is True
    assert len(body["text"].encode()) <= BUDGET.escalation_text_bytes
    assert text.startswith(body["text"])
    assert body["source"] == {
        "topic": "posts",
        "partition": 3,
        "offset": 42,
        "content_hash": "0" * 64,
    }
    assert violations("escalation", body) == []


def test_an_escalation_cut_below_its_bound_when_the_broker_allows_less() -> None:
    small = Budget(record_bytes=64 * 1024, escalation_text_bytes=256 * 1024)
    message = escalation_message(decided("é" * 100_000), PACK, "esc", "x", small)
    body = orjson.loads(message.value)
    assert weight(message) <= small.record_bytes
    assert body["text_truncated"] is True
    assert body["text"] == "é" * len(body["text"])


def test_a_short_escalation_is_whole() -> None:
    message = escalation_message(decided("rude"), PACK, "esc", "policy_threshold", BUDGET)
    body = orjson.loads(message.value)
    assert body["text"] == "rude"
    assert body["text_truncated"] is False


@pytest.mark.parametrize("stamp", [253402300800.0, 1e18, -62135596801.0, float("inf")])
def test_timestamps_rfc_3339_cannot_write_become_null(stamp: float) -> None:
    assert iso_time(stamp) is None
    message = decision_message(decided("hi", produced_at=stamp), PACK, "decisions")
    body = orjson.loads(message.value)
    assert body["post_produced_at"] is None
    assert violations("decision", body) == []


@example(1732950000.9999996)  # rounds up into the next second
@example(1732950000.0005)
@given(st.floats(min_value=-1e12, max_value=1e12) | st.integers(0, 2**34).map(lambda ms: ms / 1000))
def test_a_timestamp_is_written_as_datetime_writes_it(stamp: float) -> None:
    # iso_time formats each second once and appends the milliseconds: it must agree with
    # datetime's own rounding everywhere, including .9995 s and beyond its fast range.
    try:
        moment = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        assert iso_time(stamp) is None
        return
    expected = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso_time(stamp) == expected


def test_a_dead_letter_of_a_huge_key_and_value_fits_and_says_what_was_cut() -> None:
    record = Record("posts", 1, 9, 1.7e9, b"k" * 1_000_000, b"\xff" * 3_000_000)
    why = Rejection("not_utf8", "x" * 1_000_000, field="/" + "a" * 5000 + "~0")
    message = dead_letter_message(record, why, "dl", BUDGET)
    body = orjson.loads(message.value)
    assert weight(message) <= BUDGET.record_bytes
    assert len(message.key or b"") <= KEY_LIMIT
    assert body["source"]["key_truncated"] is True
    assert len(base64.b64decode(body["source"]["key_b64"])) == KEY_LIMIT
    assert body["source"]["value_bytes"] == 3_000_000
    assert body["original_truncated"] is True
    assert base64.b64decode(body["original_b64"]) == b"\xff" * len(
        base64.b64decode(body["original_b64"])
    )
    assert len(body["reason"]["message"]) < 2000
    assert violations("dead_letter", body) == []


def test_a_dead_letter_keeps_within_its_schema_where_the_broker_allows_more() -> None:
    # A deployment whose brokers take 2 MiB messages (the catalogue's own max.message.bytes):
    # the original is still cut to the 1 MiB the schema allows, or consumers that validate
    # dead letters would refuse the one that holds the most to see.
    roomy = Budget(record_bytes=2 * 1024 * 1024, escalation_text_bytes=256 * 1024)
    record = Record("posts", 0, 3, 1.7e9, b"k", b"\xff" * 3 * 1024 * 1024)
    body = orjson.loads(dead_letter_message(record, Rejection("not_utf8", "x"), "dl", roomy).value)
    assert body["reason"]["code"] == "not_utf8"
    assert len(base64.b64decode(body["original_b64"])) == ORIGINAL_LIMIT
    assert body["original_truncated"] is True
    assert violations("dead_letter", body) == []


def test_modfleets_own_failures_carry_a_reference_not_the_post() -> None:
    value = orjson.dumps({"schema_version": 1, "post_id": "p", "tenant": "a", "text": "secret"})
    record = Record("posts", 0, 5, 1.7e9, b"p", value)
    why = Rejection("inference_failed", "model down", post_id="p", tenant="a")
    body = orjson.loads(dead_letter_message(record, why, "dl", BUDGET).value)
    assert body["original_b64"] == ""
    assert body["original_omitted"] is True
    assert body["source"]["offset"] == 5
    assert len(body["source"]["value_sha256"]) == 64
    kept = Budget(BUDGET.record_bytes, BUDGET.escalation_text_bytes, dead_letter_originals=True)
    body = orjson.loads(dead_letter_message(record, why, "dl", kept).value)
    assert base64.b64decode(body["original_b64"]) == value
    assert violations("dead_letter", body) == []


def test_a_dead_letter_that_cannot_be_built_falls_back_to_the_minimal_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(record: Record) -> None:
        raise RecursionError("maximum recursion depth exceeded while getting the repr")

    monkeypatch.setattr(dead_letter, "_source", explode)
    record = Record("posts", 2, 77, 1.7e9, b"k", b"[" * 5000)
    message = dead_letter_message(record, Rejection("not_json", "x"), "dl", BUDGET)
    body = orjson.loads(message.value)
    assert body["reason"]["code"] == "not_json"
    assert body["source"]["offset"] == 77
    assert body["original_omitted"] is True
    assert violations("dead_letter", body) == []


def test_the_minimal_dead_letter_is_valid_for_any_record() -> None:
    record = Record("posts", 0, 0, None, None, None)
    body = orjson.loads(minimal_dead_letter(record, "undeliverable", "dl").value)
    assert violations("dead_letter", body) == []


@pytest.mark.parametrize(
    ("post_id", "tenant", "kept"),
    [
        ("p-1", "acme", ("p-1", "acme")),
        ("p" * 257, "t" * 129, (None, None)),  # past the post schema's bounds
        ("", "", (None, None)),
    ],
)
def test_the_minimal_dead_letter_names_its_post_only_within_the_posts_bounds(
    post_id: str, tenant: str, kept: tuple[str | None, str | None]
) -> None:
    record = Record("posts", 0, 0, None, None, b"x" * 10)
    body = orjson.loads(minimal_dead_letter(record, "undeliverable", "dl", post_id, tenant).value)
    assert (body["post_id"], body["tenant"]) == kept
    assert violations("dead_letter", body) == []


def test_only_well_formed_bounded_trace_headers_travel_on() -> None:
    parent = b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"
    huge = Record(
        "p", 0, 0, None, None, b"", (("traceparent", parent), ("tracestate", b"x" * 10**6))
    )
    assert dict(carried_headers(huge)) == {
        "content-type": b"application/json",
        "traceparent": parent,
    }
    junk = Record("p", 0, 0, None, None, b"", (("traceparent", b"0" * 10**6),))
    assert dict(carried_headers(junk)) == {"content-type": b"application/json"}


GOOD_PARENT = b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"


@pytest.mark.parametrize(
    "parent",
    [
        b"zz-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01",  # version not hex
        b"ff-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01",  # the invalid version
        b"00-" + b"A" * 32 + b"-" + b"b" * 16 + b"-01",  # upper case
        b"00-" + b"a" * 32 + b"-\r\n\x00" + b"0" * 13 + b"-01",  # CR, LF, NUL in the parent id
        b"00-" + b"a" * 32 + b"-" + b"0" * 16 + b"-01",  # all-zero parent id
        b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-\xff\xff",  # flags not hex
        b"00_" + b"a" * 32 + b"_" + b"b" * 16 + b"_01",  # not its separators
    ],
)
def test_a_malformed_traceparent_is_not_carried_and_starts_no_trace(parent: bytes) -> None:
    assert len(parent) == TRACEPARENT_LENGTH
    record = Record("p", 0, 0, None, None, b"", (("traceparent", parent),))
    assert trace_context(record) == (None, (("content-type", b"application/json"),))


@pytest.mark.parametrize("state", [b"a=1\r\nx-evil: 1", b"a=1\x00", b"a=\xff"])
def test_a_tracestate_of_more_than_printable_ascii_is_dropped(state: bytes) -> None:
    record = Record(
        "p", 0, 0, None, None, b"", (("traceparent", GOOD_PARENT), ("tracestate", state))
    )
    trace_id, headers = trace_context(record)
    assert trace_id == "a" * 32
    assert dict(headers) == {"content-type": b"application/json", "traceparent": GOOD_PARENT}


@pytest.mark.parametrize("codec", ["zstd", "lz4", "snappy", "gzip"])
async def test_a_record_at_the_budget_fits_the_broker_whatever_the_codec(codec: str) -> None:
    """Compression can grow what it cannot shrink: an output at the budget's edge made of bytes
    no codec can shrink (an attacker's random text, say) must still fit ``max.message.bytes``
    once compressed and framed as a record batch."""
    settings = Settings(producer_compression=codec)
    budget = Budget.from_settings(settings)
    key = os.urandom(KEY_LIMIT)
    headers = [("traceparent", os.urandom(TRACEPARENT_LENGTH))]
    value = os.urandom(budget.value_bytes(key, headers))
    producer = AIOKafkaProducer(
        bootstrap_servers="127.0.0.1:1",
        compression_type=compression_type(settings),
        max_request_size=settings.producer_max_request_bytes,
    )
    builder = producer.create_batch()
    assert builder.append(key=key, value=value, timestamp=None, headers=headers) is not None
    framed = builder._build()  # the bytes aiokafka sends as the record batch
    assert len(framed) <= settings.broker_max_message_bytes


@pytest.mark.parametrize("key", [b"u_58213", b"\xff\x00k", b"k" * 5000])
def test_the_minimal_dead_letter_says_what_key_and_timestamp_the_record_had(key: bytes) -> None:
    # null means "had none" in dead_letter.v1: a stand-in must not claim the record had no key
    # or no timestamp. Keyed as every dead letter is: by post id when known, else the key.
    record = Record("posts", 0, 3, 1.7e9, key, b"x" * 10)
    named = minimal_dead_letter(record, "undeliverable", "dl", "p-1", "acme")
    unnamed = minimal_dead_letter(record, "undeliverable", "dl")
    assert named.key == b"p-1"
    assert unnamed.key == dead_letter_message(record, Rejection("not_json", "x"), "dl").key
    for message in (named, unnamed):
        source = orjson.loads(message.value)["source"]
        assert source["timestamp"] == iso_time(1.7e9)
        kept = base64.b64decode(source["key_b64"])
        assert kept == key[:KEY_LIMIT]
        assert source.get("key_truncated", False) is (len(key) > KEY_LIMIT)
        assert violations("dead_letter", orjson.loads(message.value)) == []


def test_a_dead_letter_too_large_for_its_budget_keeps_the_key_that_fits() -> None:
    # Under a budget too small for the whole key (smaller than the settings allow, as a
    # guard), the minimal form keeps the key's start and says it is cut, and still fits.
    tiny = Budget(record_bytes=2048, escalation_text_bytes=1024)
    record = Record("posts", 0, 3, 1.7e9, b"k" * 5000, b"nope")
    message = dead_letter_message(record, Rejection("not_json", "x"), "dl", tiny)
    body = orjson.loads(message.value)
    assert weight(message) <= tiny.record_bytes
    assert body["source"]["key_truncated"] is True
    assert base64.b64decode(body["source"]["key_b64"]) != b"k" * 5000
    assert body["source"]["timestamp"] == iso_time(1.7e9)
    assert violations("dead_letter", body) == []
