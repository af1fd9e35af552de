"""The join of reviews with decisions: hostile reviews first, then the counting rules."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from review_messages import DIGEST_B, decision, review

from modfleet.reviews.agreement import Tally
from modfleet.reviews.join import Join, Rejected, parse


def feed(join: Join, tally: Tally, *messages: tuple[str, dict[str, Any]]) -> None:
    for now, (kind, message) in enumerate(messages):
        if kind == "decision":
            tally.add(join.add_decision(message, float(now)))
        else:
            tally.add(join.add_review(message, float(now)))


def test_hostile_reviews_count_for_nothing_and_cost_nothing() -> None:
    join, tally = Join(max_decisions=100, ttl_s=3600), Tally()
    mine = decision("p1", "remove", ("hate",), tenant="acme")
    theirs = decision("p2", "remove", ("hate",), tenant="globex")
    unknown = review(decision("never-decided"), "allow")
    forged_tenant = review(theirs, "allow", tenant="acme")  # acme overturning globex's removal
    forged_post = review(mine, "allow", post_id="p2")
    feed(
        join,
        tally,
        ("decision", mine),
        ("decision", theirs),
        ("review", unknown),
        ("review", forged_tenant),
        ("review", forged_post),
        ("review", review(mine, "remove", {"hate": True})),
        ("review", review(mine, "allow", {"hate": False})),  # a second opinion: changes nothing
        ("review", review(mine, "remove", {"hate": True})),  # a redelivery
    )
    tally.add(join.flush())
    assert tally.results["joined"] == 1
    assert tally.results["mismatch"] == 2
    assert tally.results["duplicate"] == 2
    assert tally.results["unknown"] == 1
    assert tally.overall.reviewed == 1
    assert tally.overall.overturned == 0, "neither forged nor later reviews overturn"
    assert tally.overall.removal_precision == 1.0


def test_a_huge_note_or_odd_verdicts_are_rejected_naming_the_field() -> None:
    of = decision("p1", "remove", ("hate",))
    with pytest.raises(Rejected, match="/note"):
        parse("review", orjson.dumps(review(of, "allow", note="x" * 5_000_000)))
    with pytest.raises(Rejected, match="/verdicts"):
        parse("review", orjson.dumps(review(of, "allow", {f"c{i}": True for i in range(10_000)})))
    with pytest.raises(Rejected, match="/decision_id"):
        parse("review", orjson.dumps(review(of, "allow", decision_id="DROP TABLE")))
    with pytest.raises(Rejected, match="not JSON"):
        parse("review", b"\xff\xfe{")
    with pytest.raises(Rejected, match="no value"):
        parse("review", None)
    assert parse("review", orjson.dumps(review(of, "allow")))["action"] == "allow"


def test_verdicts_on_categories_the_policy_lacks_are_ignored() -> None:
    join, tally = Join(100, 3600), Tally()
    of = decision("p1", "remove", ("hate",))
    feed(
        join,
        tally,
        ("decision", of),
        ("review", review(of, "remove", {"hate": True, "x" * 128: True})),
    )
    assert set(tally.categories) == {"hate"}


def test_memory_is_bounded_by_count_and_age() -> None:
    join = Join(max_decisions=50, ttl_s=10)
    for i in range(500):
        join.add_decision(decision(f"p{i}"), now=float(i) / 100)
    assert len(join) == 50
    join.add_decision(decision("late"), now=1000.0)
    assert len(join) == 1, "decisions past their age are dropped"
    # Reviews of decisions never seen wait in a bounded map and come back unknown.
    outcomes = []
    for i in range(1000):
        outcomes += join.add_review(review(decision(f"ghost{i}"), "allow"), now=1000.0)
    assert join.pending <= join.max_pending
    assert sum(o.result == "unknown" for o in outcomes) == 1000 - join.max_pending


def test_a_review_that_comes_before_its_decision_is_joined_when_it_arrives() -> None:
    join, tally = Join(100, 3600), Tally()
    of = decision("p1", "escalate", ("violence",), stage="llm")
    feed(join, tally, ("review", review(of, "allow", {"violence": False})), ("decision", of))
    assert tally.results["pending"] == 1
    assert tally.results["joined"] == 1
    assert tally.groups["stage"]["llm"].escalation_precision == 0.0
    assert tally.overall.overturned_share == 1.0


def test_an_escalated_review_waits_for_a_final_one() -> None:
    join, tally = Join(100, 3600), Tally()
    of = decision("p1", "escalate", ("hate",))
    feed(
        join,
        tally,
        ("decision", of),
        ("review", review(of, "escalate")),
        ("review", review(of, "restrict", {"hate": True})),
    )
    assert tally.results["not_final"] == 1
    assert tally.overall.escalations_upheld == 1


def test_agreement_by_group() -> None:
    join, tally = Join(100, 3600), Tally()
    a1 = decision("a1", "remove", ("hate",))
    a2 = decision("a2", "remove", ("hate", "harassment"))
    b1 = decision("b1", "escalate", ("scam",), digest=DIGEST_B, model="gpt-oss", stage="llm")
    b2 = decision("b2", "allow", (), digest=DIGEST_B, model="gpt-oss", stage="llm")
    feed(
        join,
        tally,
        *(("decision", d) for d in (a1, a2, b1, b2)),
        ("review", review(a1, "remove", {"hate": True})),
        ("review", review(a2, "allow", {"hate": False, "harassment": False})),
        ("review", review(b1, "label", {"scam": True})),
        ("review", review(b2, "remove", {"scam": True})),
    )
    digests = tally.groups["policy_digest"]
    assert digests["a" * 64].removal_precision == 0.5
    assert digests["b" * 64].escalation_precision == 1.0
    assert digests["b" * 64].overturned_share == 0.5
    assert tally.groups["model"]["gpt-oss"].reviewed == 2
    assert tally.groups["category"]["hate"].overturned == 1
    assert tally.groups["category"]["harassment"].removal_precision == 0.0
    hate, scam = tally.categories["hate"], tally.categories["scam"]
    assert (hate.tp, hate.fp, hate.fn, hate.tn) == (1, 1, 0, 0)
    assert (scam.tp, scam.fn) == (1, 1)
    assert scam.recall == 0.5
    assert tally.as_json()["overall"]["reviewed"] == 4  # type: ignore[index]


def test_bench_holds_every_decision_and_joins_the_reviewed_share() -> None:
    from modfleet.reviews.bench import measure, table

    result = measure(decisions=2000, reviewed_share=0.1)
    assert (result.held, result.reviewed) == (2000, 200)
    assert "B per decision" in table(result)


def test_report_window_needs_iso_times_with_a_zone() -> None:
    from modfleet.errors import FatalError
    from modfleet.reviews.read import Window

    window = Window.parse("2026-11-29T00:00Z", "2026-11-30T00:00+00:00")
    assert window.holds(window.since)
    assert not window.holds(window.until)
    assert not window.holds(None)
    with pytest.raises(FatalError, match="--since"):
        Window.parse("yesterday", None)
    with pytest.raises(FatalError, match="time zone"):
        Window.parse(None, "2026-11-29T00:00")


def test_reviews_waiting_for_a_decision_stay_within_a_byte_budget() -> None:
    from modfleet.reviews.join import PENDING_BYTES

    join = Join(max_decisions=10_000_000, ttl_s=3600)  # the count alone would allow 1,000,000
    fat = {f"{i:03d}" + "v" * 125: True for i in range(64)}  # the schema's largest verdicts
    outcomes = []
    for i in range(20_000):
        ghost = decision(f"g{i}-" + "p" * 200)
        outcomes += join.add_review(review(ghost, "remove", fat), now=1.0)
    assert 0 < join.pending_bytes <= PENDING_BYTES
    assert join.pending < 20_000
    assert sum(o.result == "unknown" for o in outcomes) == 20_000 - join.pending
    tally = Tally()
    tally.add(join.flush())
    assert (join.pending, join.pending_bytes) == (0, 0)


def test_a_forged_review_waiting_first_cannot_cancel_the_honest_one() -> None:
    # decision_id is computable from what a decision shows; a forger who reviews it under
    # another tenant before the decision arrives must not make the honest review a duplicate.
    join, tally = Join(max_decisions=100, ttl_s=3600), Tally()
    theirs = decision("p1", "remove", ("hate",), tenant="globex")
    feed(
        join,
        tally,
        ("review", review(theirs, "allow", tenant="acme")),  # the forgery, first
        ("review", review(theirs, "remove", {"hate": True})),  # globex's own reviewer
        ("decision", theirs),
    )
    tally.add(join.flush())
    assert tally.results["joined"] == 1
    assert tally.results["duplicate"] == 0
    assert tally.overall.reviewed == 1
    assert tally.overall.overturned == 0


@pytest.mark.parametrize("char", ["v", "\U0001f600"], ids=["ascii", "emoji"])
def test_the_byte_budget_of_waiting_reviews_counts_what_they_really_hold(
    monkeypatch: pytest.MonkeyPatch, char: str
) -> None:
    # Every name at the schema's longest, in characters that Python stores in 4 bytes each:
    # a budget counted in characters would let these hold about 4x what it allows.
    import tracemalloc

    import modfleet.reviews.join as join_module

    budget = 4 * 2**20
    monkeypatch.setattr(join_module, "PENDING_BYTES", budget)
    join = Join(max_decisions=10_000_000, ttl_s=3600)
    verdicts = {char * 125 + f"{i:03d}": True for i in range(64)}
    forged = [
        orjson.dumps(
            review(decision(f"ghost{i}"), "allow", verdicts, post_id=char * 250 + f"{i:03d}")
        )
        for i in range(400)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for value in forged:
            join.add_review(parse("review", value), now=1.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert join.pending < len(forged), "the budget, not the count, must have stopped them"
    assert held <= budget, f"{held / budget:.2f}x the budget held"
    assert join.pending_bytes >= held * 0.8, "and the count stays close to what is held"
