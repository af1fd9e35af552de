"""`modfleet export training`: decisions and reviews of a time range, the posts' text read back
from the posts topic (matched by post id and content hash, never from logs), written as JSONL."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modfleet.errors import ModfleetError
from modfleet.export.training import (
    Filters,
    Labelled,
    labelled,
    preference_row,
    sft_row,
    trainer_row,
)
from modfleet.kafka import unread
from modfleet.normalise import Normalised, normalise
from modfleet.policy.model import Limits, Policy
from modfleet.policy.packs import load_policy_set
from modfleet.reviews.join import Rejected, parse, parse_record
from modfleet.reviews.read import Window, read_topic
from modfleet.settings import Settings

log = logging.getLogger(__name__)
FILES = {"train": "train.jsonl", "sft": "sft.jsonl", "preference": "preference.jsonl"}
# What a pack reads by default, for decisions of packs not loaded here.
_DEFAULT_LIMITS = Limits()


@dataclass
class Export:
    out: Path
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def manifest(self) -> dict[str, Any]:
        return {"files": FILES, "counts": dict(sorted(self.counts.items()))}


async def export_training(
    settings: Settings, out: Path, window: Window, filters: Filters, idle_s: float = 3.0
) -> Export:
    result = Export(out)
    decisions = await _decisions(settings, window, filters, result, idle_s)
    reviews = await _reviews(settings, window, decisions, result, idle_s)
    packs = _packs(settings)
    wanted = Wanted(packs)
    for decision_id, decision in decisions.items():
        found = labelled(decision, reviews.get(decision_id))
        if found is None:
            result.counts["skipped_no_label"] += 1
            continue
        wanted.add(decision, found)
    handles = _open_files(out)
    try:
        posts = read_topic(settings, settings.posts_topic, Window(None, window.until), idle_s)
        async for record in posts:
            if unread(record) is not None:
                result.counts["posts_not_read"] += 1  # its batch would inflate too far
                continue
            try:
                post = parse("post", record.value)
            except Rejected:
                continue  # the worker dead-lettered it; it has no decision to learn from
            for decision, found, seen in wanted.text_of(post):
                _write(handles, decision, found, seen.text, packs.get(_digest(decision)), result)
    finally:
        for handle in handles.values():
            handle.close()
    result.counts.update(wanted.left())
    _write_manifest(result)
    return result


class Wanted:
    """Labelled decisions waiting for their post's text, matched by tenant, post id and the hash
    of the text decided: a post edited (sent again under its id) has a decision per version,
    and each takes the version it decided, whichever comes first on the topic."""

    def __init__(self, packs: dict[str, Policy]) -> None:
        self._packs = packs
        self._waiting: dict[tuple[str, str], list[tuple[dict[str, Any], Labelled]]] = {}
        self._seen: set[tuple[str, str]] = set()

    def add(self, decision: dict[str, Any], found: Labelled) -> None:
        key = (decision["tenant"], decision["post_id"])
        self._waiting.setdefault(key, []).append((decision, found))

    def text_of(self, post: dict[str, Any]) -> list[tuple[dict[str, Any], Labelled, Normalised]]:
        """The decisions this post record's text was decided as, taken from the waiting."""
        key = (post["tenant"], post["post_id"])
        waiting = self._waiting.get(key)
        if not waiting:
            return []
        self._seen.add(key)
        matched, left = [], []
        for decision, found in waiting:
            pack = self._packs.get(_digest(decision))
            seen = _read(post["text"], pack)
            if seen.content_hash == decision["content_hash"]:
                matched.append((decision, found, seen))
            else:
                left.append((decision, found))
        if left:
            self._waiting[key] = left
        else:
            del self._waiting[key]
        return matched

    def left(self) -> collections.Counter[str]:
        """What never met its text: the post not found, or found only with other texts (never
        guessed at)."""
        counts: collections.Counter[str] = collections.Counter()
        for key, waiting in self._waiting.items():
            counts["text_changed" if key in self._seen else "missing_text"] += len(waiting)
        return counts


def _read(text: str, pack: Policy | None) -> Normalised:
    """The text as the worker read it for the decision, so that its content hash matches."""
    limits = pack.limits if pack is not None else _DEFAULT_LIMITS
    text_format = pack.text.format if pack is not None else "plain"
    return normalise(text, limits.max_text_chars, limits.max_windows, text_format)


def _digest(decision: dict[str, Any]) -> str:
    return str(decision.get("policy_digest") or "")


def _open_files(out: Path) -> dict[str, Any]:
    # Written once, whole, by one short command: blocking file calls do not hold up others.
    out.mkdir(parents=True, exist_ok=True)
    return {name: (out / file).open("wb") for name, file in FILES.items()}


def _write_manifest(result: Export) -> None:
    manifest = orjson.dumps(result.manifest(), option=orjson.OPT_INDENT_2)
    (result.out / "manifest.json").write_bytes(manifest)


async def _decisions(
    settings: Settings, window: Window, filters: Filters, result: Export, idle_s: float
) -> dict[str, dict[str, Any]]:
    kept: dict[str, dict[str, Any]] = {}
    async for record in read_topic(settings, settings.decisions_topic, window, idle_s):
        try:
            decision = parse_record("decision", record)
        except Rejected:
            continue
        if not filters.wants(decision):
            result.counts["filtered_out"] += 1
            continue
        kept.setdefault(decision["decision_id"], decision)
    result.counts["decisions"] = len(kept)
    return kept


async def _reviews(
    settings: Settings,
    window: Window,
    decisions: dict[str, dict[str, Any]],
    result: Export,
    idle_s: float,
) -> dict[str, dict[str, Any]]:
    """The first final review of each kept decision, if it names the decision's post and
    tenant (the same rule as the agreement join)."""
    found: dict[str, dict[str, Any]] = {}
    reviews = read_topic(settings, settings.reviews_topic, window.open_ended(), idle_s)
    async for record in reviews:
        try:
            review = parse_record("review", record)
        except Rejected:
            result.counts["invalid_reviews"] += 1
            continue
        decision = decisions.get(review["decision_id"])
        if decision is None or review["action"] == "escalate" or review["decision_id"] in found:
            continue
        if (review["tenant"], review["post_id"]) != (decision["tenant"], decision["post_id"]):
            result.counts["mismatched_reviews"] += 1
            continue
        found[review["decision_id"]] = review
    result.counts["reviewed"] = len(found)
    return found


def _packs(settings: Settings) -> dict[str, Policy]:
    try:
        return {p.digest: p for p in load_policy_set(settings.policy_path).all()}
    except ModfleetError as exc:
        log.warning("no policy prompts for SFT rows (%s); only train.jsonl is written", exc)
        return {}


def _write(
    handles: dict[str, Any],
    decision: dict[str, Any],
    found: Labelled,
    text: str,
    pack: Policy | None,
    result: Export,
) -> None:
    handles["train"].write(orjson.dumps(trainer_row(decision, found, text)) + b"\n")
    result.counts[f"train_{found.source}"] += 1
    if pack is None:
        result.counts["no_pack_prompt"] += 1
        return
    prompt = pack.prompt_text()
    handles["sft"].write(orjson.dumps(sft_row(prompt, text, found)) + b"\n")
    result.counts["sft"] += 1
    preference = preference_row(prompt, text, found)
    if preference is not None:
        handles["preference"].write(orjson.dumps(preference) + b"\n")
        result.counts["preference"] += 1
