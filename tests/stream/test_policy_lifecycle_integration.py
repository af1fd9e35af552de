"""Per-tenant packs, shadow policies and hot reload, on a real worker, broker and Redis."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.resources import default_policy_path
from modfleet.settings import Settings
from modfleet.shadow import compare, read_decisions
from modfleet.stack.dev import settings_env, worker_process

pytestmark = pytest.mark.integration


def pack(**changes: Any) -> dict[str, Any]:
    """The default pack with top-level changes; its golden-set gate is not needed here."""
    data: dict[str, Any] = yaml.safe_load(default_policy_path().read_text())
    data.pop("gate", None)
    data.update(changes)
    return data


def stricter(data: dict[str, Any]) -> dict[str, Any]:
    """Remove harassment far earlier than the default does."""
    data["categories"]["harassment"]["thresholds"] = [{"min_score": 0.3, "action": "remove"}]
    return data


def write(path: Path, data: dict[str, Any]) -> None:
    # Write then rename, as a ConfigMap update does: a reader never sees half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


async def _fleet_on_packs(
    make_settings: Callable[..., Settings], tmp_path: Path, more: dict[str, dict[str, Any]]
) -> Settings:
    """Settings for a worker reading a pack folder (the default pack and ``more``), with its
    topics made."""
    packs = tmp_path / "packs"
    packs.mkdir()
    for name, data in {"default.yaml": pack(), **more}.items():
        write(packs / name, data)
    settings = make_settings(policy_path=packs)
    await create_topics(settings, replication_factor=1, partitions=2)
    return settings


async def test_tenant_packs_and_a_shadow_policy(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = await _fleet_on_packs(
        make_settings,
        tmp_path,
        {
            "acme.yaml": stricter(pack(id="acme-strict", tenants=["acme"])),
            "candidate.yaml": stricter(pack(id="candidate", mode="shadow")),
        },
    )
    texts = unique_texts(300, seed=3)
    sent = [
        post(f"s-{i}", t, tenant="acme" if i % 3 == 0 else "other") for i, t in enumerate(texts)
    ]
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(p) for p in sent])
        outcomes = await collect_outcomes(settings, len(sent), timeout_s=60)
    live, shadow = await read_decisions(settings, idle_s=2)

    tenant = {p["post_id"]: p["tenant"] for p in sent}
    assert {d["post_id"] for d in outcomes.decisions} == set(tenant)
    for d in outcomes.decisions:
        assert d["policy_id"] == ("acme-strict" if tenant[d["post_id"]] == "acme" else "default")
    assert {d["policy_id"] for d in shadow} == {"candidate"}, "shadow decisions stay apart"
    assert {d["post_id"] for d in shadow} == set(tenant)

    [comparison] = compare(live, shadow)
    by_post = {d["post_id"]: d["action"] for d in live}
    expected = sum(1 for s in shadow if s["action"] != by_post[s["post_id"]])
    assert comparison.compared == len(sent)
    assert comparison.disagreed == expected
    assert expected > 0, "the stricter candidate differs from default on some posts"
    assert {d.post_id for d in comparison.differences} == {
        s["post_id"] for s in shadow if s["action"] != by_post[s["post_id"]]
    }

    report = _shadow_report_cli(settings, tmp_path / "report.json")
    assert report[0]["compared"] == len(sent)
    assert report[0]["agreed"] == len(sent) - expected


async def test_a_tenant_whose_platform_writes_html_gets_its_posts_read_rendered(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # From the pack file's text.format to the decision, on a real worker: markup that splits
    # a word is read away for the forum's posts, and the same bytes from another tenant are
    # read as written, under the default pack.
    forum = pack(id="forum", tenants=["forum"], text={"format": "html"})
    settings = await _fleet_on_packs(make_settings, tmp_path, {"forum.yaml": forum})
    disguised = [
        "f<b></b>u<b></b>c<b></b>k you",
        "you are a worthless &#105;&#100;&#105;&#111;&#116;",
    ]
    sent = [post(f"f-{i}", t, tenant="forum") for i, t in enumerate(disguised)]
    sent += [post(f"o-{i}", t, tenant="other") for i, t in enumerate(disguised)]
    sent.append(post("f-kind", "<p>my sourdough starter <b>survived</b> the week</p>", "forum"))
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(p) for p in sent])
        outcomes = await collect_outcomes(settings, len(sent), timeout_s=60)
    decided = {d["post_id"]: d for d in outcomes.decisions}
    assert set(decided) == {p["post_id"] for p in sent}
    for i in range(len(disguised)):
        assert (decided[f"f-{i}"]["policy_id"], decided[f"f-{i}"]["action"]) == ("forum", "remove")
        assert (decided[f"o-{i}"]["policy_id"], decided[f"o-{i}"]["action"]) == ("default", "allow")
    assert decided["f-kind"]["action"] == "allow"


def _shadow_report_cli(settings: Settings, out: Path) -> list[dict[str, Any]]:
    env = {**os.environ, **settings_env(settings)}
    cmd = [sys.executable, "-m", "modfleet", "shadow", "report", "--idle", "2", "--json", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "disagree" in done.stdout
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows


async def test_hot_reload_switches_versions_mid_stream_without_loss(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    write(policy, pack(version="1.0.0"))
    settings = make_settings(policy_path=policy, policy_reload_interval_s=0.3)
    await create_topics(settings, replication_factor=1, partitions=1)
    texts = unique_texts(900, seed=4)
    sent = [post(f"h-{i}", t) for i, t in enumerate(texts)]
    repeat = post("h-repeat", texts[0])  # seen under 1.0.0, sent again under 1.1.0
    log = tmp_path / "worker.log"
    with worker_process(settings, log):
        await produce_posts(settings, [encode(p) for p in sent[:300]])
        await collect_outcomes(settings, 300, timeout_s=60)
        write(policy, pack(version="1.1.0"))
        await asyncio.sleep(1.5)
        await produce_posts(settings, [encode(p) for p in sent[300:600]] + [encode(repeat)])
        await collect_outcomes(settings, 601, timeout_s=60)
        broken = pack(version="1.2.0")
        broken["categories"]["hate"]["thresholds"][0]["min_score"] = 1.5
        write(policy, broken)
        await asyncio.sleep(1.5)
        await produce_posts(settings, [encode(p) for p in sent[600:]])
        outcomes = await collect_outcomes(settings, len(sent) + 1, timeout_s=60)

    decided = {d["post_id"]: d for d in outcomes.decisions}
    assert set(decided) == {p["post_id"] for p in sent} | {"h-repeat"}
    versions = [d["policy_version"] for d in outcomes.decisions]
    switch = versions.index("1.1.0")
    assert set(versions[:switch]) == {"1.0.0"}
    assert set(versions[switch:]) == {"1.1.0"}, "refused 1.2.0 never applies; 1.0.0 never returns"
    assert collections.Counter(versions)["1.0.0"] == 300
    assert decided["h-repeat"]["from_cache"] is False, "a new version keys the cache anew"
    text = log.read_text()
    assert "policy reloaded" in text
    assert "policy change refused" in text
    assert "min_score" in text
