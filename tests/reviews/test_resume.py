"""What a restart of the live join decides from the last run's marks, without a broker."""

from __future__ import annotations

import hashlib

from aiokafka import TopicPartition
from review_messages import decision, review

from modfleet.reviews.join import Join
from modfleet.reviews.resume import Resume


def test_the_oldest_waiting_review_of_each_partition_is_the_settled_mark() -> None:
    join = Join(max_decisions=1000, ttl_s=3600)
    late = decision("late")
    for offset, post in ((3, "late"), (4, "x"), (9, "y")):
        of = late if post == "late" else decision(post)
        join.add_review(review(of, "allow"), 1.0, (0, offset))
    join.add_review(review(decision("z"), "allow"), 1.0, (1, 7))
    assert join.oldest_waiting() == {0: 3, 1: 7}
    join.add_decision(late, 2.0)  # joined: no longer waiting
    assert join.oldest_waiting() == {0: 4, 1: 7}
    join.expire(1e9)  # given up as unknown: nothing waits
    assert join.oldest_waiting() == {}


def test_a_review_is_taken_back_only_if_it_waited_when_the_last_run_stopped() -> None:
    tp = TopicPartition("reviews", 0)
    waited, joined, gone = (hashlib.sha256(n).digest() for n in (b"w", b"j", b"g"))
    resume = Resume({tp: 10}, {tp: 5}, {0: 100}, waiting_for={waited, joined, gone})
    resume.saw(0, 40, joined)  # the last run had read this decision
    resume.saw(0, 120, waited)  # this one came after it stopped
    assert resume.fate(tp, 6, joined) == "restore"
    assert resume.fate(tp, 6, waited) == "readmit"
    assert resume.fate(tp, 3, waited) == "skip", "below the mark: it had given up waiting"
    assert resume.fate(tp, 7, gone) == "readmit", "its decision never came: it waits again"
    other = hashlib.sha256(b"o").digest()
    assert resume.fate(tp, 2, other) == "restore"
