"""The public labelled sets the shipped model is trained on, each mapped onto the categories.

Each reader states what its labels say about each category: positive, negative, or nothing
(``None``), so a head learns only from rows that speak to it. Sets whose licence does not allow
redistributing a model trained on them (Ethos, GPL-3.0) and surge-toxicity (kept for the
independent check) are not read here; ``modfleet eval`` measures the model on them instead.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from modfleet.errors import FatalError
from modfleet.model.data import TEST, TRAIN, Corpus, Example, example

Labels = dict[str, bool | None]
NONE: Labels = {}
BENIGN: Labels = {
    "harassment": False, "hate": False, "violence": False, "sexual": False,
    "self_harm": False, "spam": False,
}  # fmt: skip


def _rows(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise FatalError(f"{path}: no such file (is --shared the datasets folder?)")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield from csv.DictReader(handle, delimiter=delimiter)


def _flag(value: str) -> bool:
    return value.strip() in ("1", "1.0", "True", "true")


def _count(value: str) -> int:
    return int(float(value or 0))


def civil_comments(root: Path) -> Iterator[Example]:
    # Every post is toxic: a type column of 0 means "toxic, not of this type", so these rows
    # teach insult vs threat vs identity attack vs plain profanity. One rater is noise: unknown.
    for row in _rows(root / "civil-comments-toxic-spans" / "civil_comments_toxic_span_types.csv"):

        def typed(majority: str, count: str, row: dict[str, str] = row) -> bool | None:
            return True if _flag(row[majority]) else False if _count(row[count]) == 0 else None

        labels: Labels = {
            "harassment": typed("insult_majority", "n_insult"),
            "hate": typed("identity_attack_majority", "n_identity_attack"),
            "violence": typed("threat_majority", "n_threat"),
            "self_harm": False,
            "spam": False,
        }
        yield example(row["text"], labels, "civil-comments-toxic-spans")


def convabuse(root: Path) -> Iterator[Example]:
    for row in _rows(root / "convabuse" / "convabuse.csv"):
        abusive = _count(row["n_abusive"]) > 0
        aimed = _flag(row["target_system_majority"]) or _flag(row["intellectual_insult_majority"])
        hateful = sum(_count(row[f"n_{k}"]) for k in ("racist", "homophobic", "transphobic"))
        labels: Labels = {
            "harassment": True if aimed else None if abusive else False,
            "hate": None if hateful else False,
            "violence": None if abusive else False,
            "sexual": True
            if _flag(row["sex_harassment_majority"])
            else None
            if _count(row["n_sex_harassment"])
            else False,
            "spam": False,
        }
        split = TEST if row["split"] == "test" else TRAIN
        yield example(row["user"], labels, "convabuse", split=split)


def davidson(root: Path) -> Iterator[Example]:
    # Offensive (class 1) is not hate, but may or may not be aimed at someone: harassment unknown.
    for row in _rows(root / "davidson-hate-offensive" / "labeled_data.csv"):
        kind = row["class"]
        labels: Labels = (
            {**BENIGN, "harassment": None, "hate": kind == "0", "sexual": None}
            if kind in ("0", "1")
            else BENIGN
        )
        yield example(row["tweet"], labels, "davidson-hate-offensive")


def hatexplain(root: Path) -> Iterator[Example]:
    # "offensive" is offensive-not-hate, mostly insults: the proxy for harassment on short posts.
    for row in _rows(root / "hatexplain" / "hatexplain.csv"):
        label = row["label"]
        if label == "undecided":
            continue
        labels: Labels = {
            "normal": BENIGN,
            "offensive": {**BENIGN, "harassment": True, "sexual": None, "violence": None},
            "hatespeech": {**BENIGN, "hate": True, "harassment": None, "violence": None,
                           "sexual": None},
        }[label]  # fmt: skip
        split = TEST if row["split"] == "test" else TRAIN
        yield example(row["text"], labels, "hatexplain", split=split)


def toxigen(root: Path) -> Iterator[Example]:
    # Neutral seeds mention the same groups: the hard negatives hate needs.
    for row in _rows(root / "toxigen-seeds" / "toxigen_seed_sentences.csv"):
        hate = _flag(row["is_hate"])
        labels: Labels = {**BENIGN, "hate": True, "harassment": None} if hate else BENIGN
        yield example(row["text"], labels, "toxigen-seeds")


def sms_spam(root: Path) -> Iterator[Example]:
    for row in _rows(root / "sms-spam-collection" / "sms_spam_collection.csv"):
        labels: Labels = {**BENIGN, "spam": row["label"] == "spam", "sexual": None}
        yield example(row["text"], labels, "sms-spam-collection")


def youtube_spam(root: Path) -> Iterator[Example]:
    for row in _rows(root / "youtube-spam-collection" / "youtube_spam_collection.csv"):
        labels: Labels = {**BENIGN, "spam": _flag(row["is_spam"])}
        yield example(row["text"], labels, "youtube-spam-collection")


def reddit_mental_health(root: Path) -> Iterator[Example]:
    # The subreddit is the only label: r/suicidewatch is weak self-harm disclosure, the others
    # noisy negatives; eating-disorder talk is neither, so it says nothing about self-harm.
    for row in _rows(
        root / "reddit-mental-health-subreddits" / "reddit_mental_health_27subreddits.csv"
    ):
        sub = row["subreddit"].casefold()
        self_harm = True if sub == "suicidewatch" else None if sub == "edanonymous" else False
        labels: Labels = {**BENIGN, "self_harm": self_harm, "harassment": None}
        yield example(row["text"], labels, "reddit-mental-health-subreddits")


def simple_safety(root: Path) -> Iterator[Example]:
    for row in _rows(root / "simple-safety-tests" / "simple_safety_tests.csv"):
        area = row["harm_area"].casefold()
        labels: Labels = {
            "self_harm": "self-harm" in area or None,
            "violence": "violence" in area or None,
        }
        yield example(row["prompts_final"], labels, "simple-safety-tests")


Reader = Callable[[Path], Iterator[Example]]
# name -> (reader, licence as recorded in the shared sets' README)
SHARED: dict[str, tuple[Reader, str]] = {
    "civil-comments-toxic-spans": (civil_comments, "CC0-1.0"),
    "convabuse": (convabuse, "CC-BY-4.0"),
    "davidson-hate-offensive": (davidson, "MIT"),
    "hatexplain": (hatexplain, "MIT (repository); CC-BY-4.0 (dataset card)"),
    "toxigen-seeds": (toxigen, "MIT"),
    "sms-spam-collection": (sms_spam, "free, no limitations (authors); CC-BY-4.0 (UCI)"),
    "youtube-spam-collection": (youtube_spam, "CC-BY-4.0 (UCI)"),
    "reddit-mental-health-subreddits": (reddit_mental_health, "Apache-2.0"),
    "simple-safety-tests": (simple_safety, "CC-BY-4.0"),
}


def read_shared(root: Path, corpus: Corpus) -> None:
    """Every set of :data:`SHARED` under ``root``, added to ``corpus``."""
    for name, (reader, licence) in SHARED.items():
        corpus.add(name, licence, reader(root))
