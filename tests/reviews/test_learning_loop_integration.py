"""The learning loop end to end on a real worker, broker and Redis: decisions and escalations,
reviews for some of them, agreement against an independent count, an export that
`modfleet model train` reads back, and the retrained model as a shadow pack, reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from posts import encode, post
from review_messages import REVIEWER

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.resources import default_policy_path
from modfleet.settings import Settings
from modfleet.shadow import compare, read_decisions
from modfleet.shadow.report import Comparison
from modfleet.stack.dev import settings_env, worker_process

pytestmark = pytest.mark.integration

FUNCTIONAL = Path(__file__).parents[2] / "datasets" / "functional" / "functional.jsonl"
OPTED_OUT = "quiet-tenant"


def labelled_rows(count: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in FUNCTIONAL.read_text().splitlines() if line.strip()]
    step = max(1, len(rows) // count)
    return rows[::step][:count]


def truth_review(decision: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """What a careful reviewer says: the dataset's labels for the pack's categories."""
    verdicts = {c: bool(truth[c]) for c in decision["scores"] if isinstance(truth.get(c), bool)}
    return {
        "schema_version": 1,
        "decision_id": decision["decision_id"],
        "post_id": decision["post_id"],
        "tenant": decision["tenant"],
        "verdicts": verdicts,
        "action": "remove" if any(verdicts.values()) else "allow",
        "reviewer": REVIEWER,
        "reviewed_at": "2026-11-29T12:00:00Z",
    }


def expected_counts(
    decisions: list[dict[str, Any]], reviews: list[dict[str, Any]]
) -> dict[str, Any]:
    """The agreement numbers, counted directly from the rule in topics/README.md."""
    by_id = {d["decision_id"]: d for d in decisions}
    reviewed = overturned = removals = removals_up = escalations = escalations_up = 0
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    for r in reviews:
        d = by_id[r["decision_id"]]
        if d["action"] == "escalate":
            upheld = r["action"] != "allow"
            escalations += 1
            escalations_up += upheld
        else:
            upheld = r["action"] == d["action"]
        if d["action"] == "remove":
            removals += 1
            removals_up += upheld
        reviewed += 1
        overturned += not upheld
        for c, violates in r["verdicts"].items():
            if c in d["labels"]:
                (tp if violates else fp)[c] = (tp if violates else fp).get(c, 0) + 1
    return {
        "reviewed": reviewed,
        "overturned": overturned,
        "removals": (removals, removals_up),
        "escalations": (escalations, escalations_up),
        "tp": tp,
        "fp": fp,
    }


async def test_reviews_flow_back_into_agreement_and_training_data(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(reviews_topic=f"reviews-{tmp_path.name[-10:]}")
    await create_topics(settings, replication_factor=1, partitions=2)
    rows = labelled_rows(160)
    sent = [
        post(f"f-{i}", r["text"], tenant=OPTED_OUT if i % 8 == 0 else "acme")
        for i, r in enumerate(rows)
    ]
    truth = {p["post_id"]: r for p, r in zip(sent, rows, strict=True)}
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(p) for p in sent])
        outcomes = await collect_outcomes(settings, len(sent), timeout_s=90)
    decisions = list({d["decision_id"]: d for d in outcomes.decisions}.values())
    assert len(decisions) == len(sent)
    actions = {d["action"] for d in decisions}
    assert {"allow", "escalate"} <= actions, actions
    assert outcomes.escalations, "some posts go to human review"

    reviews = [truth_review(d, truth[d["post_id"]]) for d in decisions[::2]]
    hostile = [
        {**reviews[0], "tenant": "someone-else"},  # a review for another tenant's decision
        {**reviews[1], "decision_id": "f" * 64},  # a decision nobody made
        reviews[2],  # delivered twice
    ]
    await _produce(settings, settings.reviews_topic, [*reviews, *hostile])
    expected = expected_counts(decisions, reviews)

    report = _cli(settings, tmp_path, "reviews", "report", "--idle", "2", "--json",
                  str(tmp_path / "report.json"))  # fmt: skip
    assert "escalation precision" in report
    got = json.loads((tmp_path / "report.json").read_text())
    assert got["results"]["joined"] == expected["reviewed"] == len(reviews)
    assert (got["results"]["mismatch"], got["results"]["unknown"]) == (1, 1)
    assert got["results"]["duplicate"] == 1
    overall = got["overall"]
    assert overall["overturned"] == expected["overturned"]
    assert (overall["removals"], round(overall["removal_precision"] or 0, 6)) == (
        expected["removals"][0],
        round(expected["removals"][1] / max(1, expected["removals"][0]), 6),
    )
    assert overall["escalations"] == expected["escalations"][0] > 0
    assert (
        overall["escalation_precision"] == expected["escalations"][1] / expected["escalations"][0]
    )
    for c, n in expected["tp"].items():
        assert got["verdicts_by_category"][c]["tp"] == n
    for c, n in expected["fp"].items():
        assert got["verdicts_by_category"][c]["fp"] == n

    out = tmp_path / "export"
    _cli(settings, tmp_path, "export", "training", "--out", str(out), "--idle", "2",
         env={"MODFLEET_EXPORT_OPTED_OUT_TENANTS": OPTED_OUT})  # fmt: skip
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    acme_reviewed = {r["post_id"] for r in reviews if r["tenant"] == "acme"}
    assert {row["post_id"] for row in train} == acme_reviewed
    assert all(row["label_source"] == "reviewer" for row in train)
    for row in train:
        for c, violates in truth_review_labels(truth[row["post_id"]]).items():
            assert row[c] is violates, (row["post_id"], c)
    quiet_texts = {p["text"] for p in sent if p["tenant"] == OPTED_OUT}
    exported = b"".join((out / name).read_bytes() for name in ("train.jsonl", "sft.jsonl",
                                                                "preference.jsonl"))  # fmt: skip
    assert not any(orjson.dumps(t)[1:-1] in exported for t in quiet_texts)
    sft = (out / "sft.jsonl").read_text().splitlines()
    assert len(sft) == len(train)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["preference"] == sum(
        1 for line in sft if json.loads(line)["label_source"] == "reviewer"
    ) - sum(1 for r in reviews if r["post_id"] in acme_reviewed and _upheld(decisions, r))

    model = tmp_path / "models" / "loop"
    _cli(settings, tmp_path, "model", "train", "--out", str(model), "--data",
         str(out / "train.jsonl"), "--data", str(FUNCTIONAL), "--version", "loop")  # fmt: skip
    card = json.loads((model / "card.json").read_text())
    assert "train.jsonl" in card["sources"]
    assert card["id"].endswith("-loop")

    # The retrained model as a shadow pack (same policy, new model) on the same posts.
    shadow = await _shadow_of_retrained(make_settings, tmp_path, model, sent)
    assert shadow.compared == len(sent)
    assert shadow.shadow_policy == "candidate@" + str(pack()["version"])


async def _shadow_of_retrained(
    make_settings: Callable[..., Settings], tmp_path: Path, model: Path, sent: list[dict[str, Any]]
) -> Comparison:
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "default.yaml").write_text(yaml.safe_dump(pack()))
    candidate = pack(id="candidate", mode="shadow")
    candidate["model"]["id"] = "modfleet-embedded@" + model.name
    (packs / "candidate.yaml").write_text(yaml.safe_dump(candidate))
    settings = make_settings(policy_path=packs, embedded_models_dir=model.parent)
    await create_topics(settings, replication_factor=1, partitions=2)
    with worker_process(settings, tmp_path / "shadow-worker.log"):
        await produce_posts(settings, [encode(p) for p in sent])
        await collect_outcomes(settings, len(sent), timeout_s=90)
        live, shadows = await read_decisions(settings, idle_s=2)
    assert {d["model_id"].split("+")[0] for d in shadows} == {"modfleet-embedded-loop"}
    assert {d["policy_digest"] for d in shadows}.isdisjoint({d["policy_digest"] for d in live})
    [comparison] = compare(live, shadows)
    return comparison


def pack(**changes: Any) -> dict[str, Any]:
    """The default pack; its golden-set gate is not needed here."""
    data: dict[str, Any] = yaml.safe_load(default_policy_path().read_text())
    data.pop("gate", None)
    data.update(changes)
    return data


def truth_review_labels(row: dict[str, Any]) -> dict[str, bool]:
    return {c: v for c, v in row.items() if isinstance(v, bool) and c != "flagged"}


def _upheld(decisions: list[dict[str, Any]], review: dict[str, Any]) -> bool:
    d = next(d for d in decisions if d["decision_id"] == review["decision_id"])
    if d["action"] == "escalate":
        return bool(review["action"] != "allow")
    return bool(review["action"] == d["action"])


async def _produce(settings: Settings, topic: str, messages: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(topic, orjson.dumps(m), key=m["post_id"].encode())
    finally:
        await producer.stop()


def _cli(settings: Settings, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **settings_env(settings), **(env or {})}
    cmd = [sys.executable, "-m", "modfleet", *args]
    done = subprocess.run(
        cmd, env=full_env, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
