"""Sealing and opening cache entries: pure logic, no Redis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modfleet.cache import Sealer
from modfleet.inference import Classifier, Verdict
from modfleet.policy import Policy

SECRET = b"0123456789abcdef-secret"
KEY = "modfleet:verdict:v3:test@1.0.0:abc:" + "ab" * 32


def test_a_sealed_verdict_opens_as_itself(pack: Policy) -> None:
    sealer = Sealer(SECRET)
    verdict = Verdict({"offensive": 0.8}, rationale="rude")
    opened = sealer.open(KEY, sealer.seal(KEY, verdict, pack), pack)
    assert opened.rejected is None
    assert opened.verdict is not None
    # The entry holds the pack's scores: what deciding needs, with nothing left to map.
    assert opened.verdict.policy_scores(pack) == verdict.policy_scores(pack)
    assert opened.verdict.policy_scores(pack)["harassment"] == 0.8
    assert opened.verdict.rationale == "rude"
    assert pack.decide(opened.verdict.policy_scores(pack)) == pack.decide(
        verdict.policy_scores(pack)
    )


def test_plain_json_written_by_anyone_is_unsealed(pack: Policy) -> None:
    forged = orjson.dumps({"scores": {"offensive": 0}})
    assert Sealer(SECRET).open(KEY, forged, pack).rejected == "unsealed"


def test_an_entry_sealed_with_another_secret_fails_its_seal(pack: Policy) -> None:
    forged = Sealer(b"someone-else's-secret-0000").seal(KEY, Verdict({"offensive": 0.0}), pack)
    assert Sealer(SECRET).open(KEY, forged, pack).rejected == "bad_seal"


def test_a_secret_longer_than_the_macs_key_still_seals_and_tells_secrets_apart(
    pack: Policy,
) -> None:
    # BLAKE2b keys stop at 64 bytes: a longer secret (a generated one, say) must not stop the
    # worker, nor collide with another that shares its first 64 bytes.
    long_a, long_b = b"k" * 64 + b"a" * 100, b"k" * 64 + b"b" * 100
    entry = Sealer(long_a).seal(KEY, Verdict({"offensive": 0.9}), pack)
    assert Sealer(long_a).open(KEY, entry, pack).rejected is None
    assert Sealer(long_b).open(KEY, entry, pack).rejected == "bad_seal"


def test_an_honest_entry_moved_to_another_texts_key_fails_its_seal(pack: Policy) -> None:
    sealer = Sealer(SECRET)
    benign = sealer.seal(KEY, Verdict({"offensive": 0.01}), pack)
    abusive_key = KEY[:-64] + "cd" * 32
    assert sealer.open(abusive_key, benign, pack).rejected == "bad_seal"


@pytest.mark.parametrize("where", [0, 70, -3], ids=["in-the-seal", "in-the-payload", "at-end"])
def test_a_corrupted_byte_anywhere_fails_the_seal(pack: Policy, where: int) -> None:
    sealer = Sealer(SECRET)
    entry = bytearray(sealer.seal(KEY, Verdict({"offensive": 0.9}), pack))
    entry[where] ^= 0x01
    assert sealer.open(KEY, bytes(entry), pack).rejected == "bad_seal"


def test_a_truncated_entry_is_rejected(pack: Policy) -> None:
    sealer = Sealer(SECRET)
    entry = sealer.seal(KEY, Verdict({"offensive": 0.9}), pack)
    assert sealer.open(KEY, entry[:40], pack).rejected == "unsealed"
    assert sealer.open(KEY, entry[:-10], pack).rejected == "bad_seal"


def _sealed_raw(body: dict[str, Any]) -> bytes:
    """An entry with a valid seal around any body, as a writer with the secret could make."""
    sealer = Sealer(SECRET)
    payload = json.dumps(body).encode()  # big integers and NaN too, unlike orjson
    return sealer._keyed.seal(KEY, payload)


def test_a_sealed_entry_that_is_not_a_verdict_is_unreadable(pack: Policy) -> None:
    for body in ({"verdict": {"scores": {}}, "scored": []}, {"categories": {}}, [1, 2]):
        assert Sealer(SECRET).open(KEY, _sealed_raw(body), pack).rejected == "unreadable"


def _entry(categories: Any, rationale: Any = None, stage: Any = None) -> dict[str, Any]:
    return {"categories": categories, "rationale": rationale, "stage": stage}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_entry({"spam": 0.1}), "does not have"),
        (_entry({"harassment": "nan"}), "finite"),
        (_entry({"harassment": 1}), "finite"),  # our writer writes floats: a writer's bug
        (_entry({"harassment": True}), "finite"),
        (_entry({"harassment": None}), "finite"),
        (_entry(["harassment", 0.9]), "not an object"),
        (_entry({}, rationale={"a": 1}), "strings or null"),
        (_entry({}, stage=7), "strings or null"),
    ],
    ids=[
        "unknown-category",
        "string-score",
        "integer",
        "boolean",
        "null",
        "categories-a-list",
        "rationale-an-object",
        "stage-a-number",
    ],
)
def test_a_sealed_entry_that_does_not_fit_the_pack_is_rejected(
    pack: Policy, body: dict[str, Any], why: str
) -> None:
    opened = Sealer(SECRET).open(KEY, _sealed_raw(body), pack)
    assert opened.rejected == "shape"
    assert why in opened.detail


class _NoAdapter(Classifier):
    """A backend that does not frame the pack as a prompt (as the embedded model)."""

    model_id = "scorer-1.0"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        raise NotImplementedError  # never called: only the scope is under test


async def test_a_backends_cache_scope_names_its_model_adapter_and_template() -> None:
    from modfleet.inference.adapters import GptOssSafeguardAdapter
    from modfleet.inference.cascade import CascadeClassifier
    from modfleet.inference.openai_backend import HttpOptions, OpenAICompatibleClassifier

    adapter = GptOssSafeguardAdapter()
    llm = OpenAICompatibleClassifier(
        adapter, HttpOptions(urls=("http://127.0.0.1:9/v1",), model="m")
    )
    embedded = _NoAdapter()
    try:
        scope = llm.cache_scope()
        assert scope == f"{llm.model_id}|adapter={adapter.name}|template={adapter.template_version}"
        assert embedded.cache_scope() == embedded.model_id
        cascade = CascadeClassifier(embedded, llm, 0.2, 0.8)
        assert embedded.cache_scope() in cascade.cache_scope()
        assert scope in cascade.cache_scope()
        assert "0.2-0.8" in cascade.cache_scope()
    finally:
        await llm.close()


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.binary(max_size=512),
    body=_JSON
    | st.fixed_dictionaries({"categories": _JSON, "rationale": _JSON, "stage": _JSON})
    | st.fixed_dictionaries(
        {
            "categories": st.dictionaries(
                st.sampled_from(["harassment", "violence", "spam"]), _JSON, max_size=3
            ),
            "rationale": st.none() | st.text(max_size=8),
            "stage": st.none() | st.text(max_size=8),
        }
    ),
)
def test_no_bytes_in_redis_can_raise_or_pass_unsealed(pack: Policy, raw: bytes, body: Any) -> None:
    sealer = Sealer(SECRET)
    assert sealer.open(KEY, raw, pack).verdict is None  # without the secret, never a verdict
    # Even a sealed body (a writer with the secret, and a bug) opens as a verdict or a reason,
    # never as an exception.
    payload = json.dumps(body).encode()  # big integers and NaN too, unlike orjson
    opened = sealer.open(KEY, sealer._keyed.seal(KEY, payload), pack)
    assert (opened.verdict is None) == (opened.rejected is not None)
