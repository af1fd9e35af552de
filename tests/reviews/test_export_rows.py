"""Rows of the training export, built from one decision and its review (pure logic)."""

from __future__ import annotations

import json

from posts import post
from review_messages import decision, review

from modfleet.export.collect import Wanted
from modfleet.export.training import (
    Filters,
    labelled,
    preference_row,
    sft_row,
    trainer_row,
)
from modfleet.normalise import normalise
from modfleet.policy import load_policy
from modfleet.policy.model import TextIn
from modfleet.resources import default_policy_path


def test_opted_out_and_other_tenants_are_never_wanted() -> None:
    filters = Filters.build([], [], " globex , initech ")
    assert not filters.wants(decision("p1", tenant="globex"))
    assert filters.wants(decision("p1", tenant="acme"))
    only = Filters.build(["acme", "globex"], [], "globex")
    assert not only.wants(decision("p1", tenant="globex")), "opting out beats --tenant"
    assert not only.wants(decision("p1", tenant="hooli"))


def test_pack_filter_by_id_version_or_digest_prefix() -> None:
    d = decision("p1", digest="ab" * 32)
    assert Filters.build([], ["default"], "").wants(d)
    assert Filters.build([], ["default@1"], "").wants(d)
    assert Filters.build([], ["abababab"], "").wants(d)
    assert not Filters.build([], ["ab"], "").wants(d), "too short a prefix names no pack"
    assert not Filters.build([], ["other", "default@2"], "").wants(d)


def test_reviewer_labels_come_first_and_an_allow_clears_every_category() -> None:
    d = decision("p1", "remove", ("hate",), stage="llm")
    found = labelled(d, review(d, "allow", {}))
    assert found is not None
    assert found.source == "reviewer"
    assert set(found.labels.values()) == {False}
    assert found.overturned == {"action": "remove", "violates": ["hate"]}
    partial = labelled(d, review(d, "restrict", {"harassment": True}))
    assert partial is not None
    assert partial.labels["harassment"] is True
    assert partial.labels["hate"] is None, "not judged is not 'fine'"
    assert partial.overturned is not None


def test_llm_verdicts_are_soft_labels_and_embedded_ones_teach_nothing() -> None:
    llm = decision("p1", "label", ("scam",), stage="llm", model="gpt-oss")
    found = labelled(llm, None)
    assert found is not None
    assert found.source == "llm"
    assert found.labels["scam"] is True
    row = trainer_row(llm, found, "text")
    assert row["scores"] == llm["scores"]
    assert row["label_source"] == "llm"
    assert labelled(decision("p2", "allow", (), stage="embedded"), None) is None
    assert labelled(decision("p3", stage=None, model="modfleet-embedded-2026.11.1"), None) is None
    assert labelled(decision("p4", stage=None, model="meta-llama/Llama-Guard-3-8B"), None)


def test_judge_rows_in_chat_layout() -> None:
    d = decision("p1", "remove", ("hate",))
    found = labelled(d, review(d, "allow", {"hate": False}))
    assert found is not None
    sft = sft_row("POLICY", "some text", found)
    assert [m["role"] for m in sft["messages"]] == ["system", "user", "assistant"]
    assert json.loads(sft["messages"][2]["content"]) == {"action": "allow", "violates": []}
    pref = preference_row("POLICY", "some text", found)
    assert pref is not None
    assert json.loads(pref["rejected"][0]["content"])["action"] == "remove"
    upheld = labelled(d, review(d, "remove", {"hate": True}))
    assert upheld is not None
    assert preference_row("POLICY", "t", upheld) is None, "nothing to prefer when upheld"


def test_an_edited_post_gives_each_decision_the_text_it_decided() -> None:
    # The same post id sent twice (an edit): each version has its own decision and hash, and
    # each decision takes its own version, whichever record comes first on the topic.
    first, second = post("p1", "what a day"), post("p1", "you are an idiot")
    wanted = Wanted({})
    decided = []
    for version, action in ((first, "allow"), (second, "remove")):
        d = decision("p1", action)
        d["content_hash"] = normalise(version["text"], 20_000).content_hash
        found = labelled(d, review(d, action, {}))
        assert found is not None
        wanted.add(d, found)
        decided.append(d)
    assert [(d["action"], seen.text) for d, _, seen in wanted.text_of(first)] == [
        ("allow", "what a day")
    ]
    assert [(d["action"], seen.text) for d, _, seen in wanted.text_of(second)] == [
        ("remove", "you are an idiot")
    ]
    assert wanted.left() == {}


def test_a_decision_whose_text_never_comes_is_counted_by_why() -> None:
    wanted = Wanted({})
    for post_id in ("changed", "missing"):
        d = decision(post_id)
        d["content_hash"] = normalise("the text decided", 20_000).content_hash
        found = labelled(d, review(d, "allow", {}))
        assert found is not None
        wanted.add(d, found)
    assert wanted.text_of(post("changed", "another text under the same id")) == []
    assert wanted.left() == {"text_changed": 1, "missing_text": 1}
    assert wanted.text_of(post("elsewhere", "a post nobody decided")) == []


def test_a_long_post_meets_its_decision_under_the_hash_of_what_the_worker_read() -> None:
    # A post over the pack's limit is read in windows (eight by default): hashed as one window,
    # its beginning and its end, it never met its decision and was counted as edited.
    long = post("p-long", "what a lovely day at the beach. " * 3_000)
    d = decision("p-long", "allow")
    d["content_hash"] = normalise(long["text"], 20_000, windows=8).content_hash
    found = labelled(d, review(d, "allow", {}))
    assert found is not None
    wanted = Wanted({})
    wanted.add(d, found)
    [(_, _, seen)] = wanted.text_of(long)
    assert len(seen.text) > 20_000
    assert wanted.left() == {}


def test_an_html_post_meets_its_decision_and_teaches_the_text_its_readers_saw() -> None:
    # Read as written, its hash is not the one the worker decided under, and a trainer fed
    # the markup would learn tags the model never reads.
    html = load_policy(default_policy_path()).model_copy(update={"text": TextIn(format="html")})
    written = post("p-html", "<p>you are a worthless &#105;&#100;&#105;&#111;&#116;</p>")
    d = decision("p-html", "remove", ("harassment",), digest=html.digest)
    d["content_hash"] = normalise(written["text"], 20_000, 8, "html").content_hash
    found = labelled(d, review(d, "remove", {"harassment": True}))
    assert found is not None
    wanted = Wanted({html.digest: html})
    wanted.add(d, found)
    [(_, _, seen)] = wanted.text_of(written)
    assert seen.text == "you are a worthless idiot"
    assert wanted.left() == {}
