"""topics/catalogue.yaml agrees with Settings, the schema files and itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modfleet.contracts import (
    MESSAGE_TYPES,
    CatalogueInvalid,
    TopicSpec,
    default_catalogue_path,
    load_catalogue,
    schema_path,
    topic_names,
)
from modfleet.errors import FatalError
from modfleet.resources import topics_dir
from modfleet.settings import Settings

TOPIC_FIELDS = sorted(name for name in Settings.model_fields if name.endswith("_topic"))


@pytest.fixture(scope="module")
def specs() -> tuple[TopicSpec, ...]:
    return load_catalogue()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(default_catalogue_path().read_text(encoding="utf-8"))
    return loaded


def test_every_settings_topic_field_is_catalogued(specs: tuple[TopicSpec, ...]) -> None:
    assert TOPIC_FIELDS, "Settings has no *_topic fields"
    assert sorted(spec.settings_field for spec in specs) == TOPIC_FIELDS


def test_topic_names_are_settings_defaults(specs: tuple[TopicSpec, ...]) -> None:
    for spec in specs:
        assert spec.name == Settings.model_fields[spec.settings_field].default


def test_every_message_type_has_a_topic(specs: tuple[TopicSpec, ...]) -> None:
    assert {spec.message_type for spec in specs} == set(MESSAGE_TYPES)
    # Only shadow decisions share a schema with another topic: they are decisions, unenforced.
    shared = [s.name for s in specs if s.message_type == "decision"]
    assert shared == ["modfleet.decisions.v1", "modfleet.shadow-decisions.v1"]


def test_sizing_is_positive(specs: tuple[TopicSpec, ...]) -> None:
    for spec in specs:
        assert spec.partitions > 0
        assert spec.replication_factor > 0
        assert spec.retention_ms > 0
        assert spec.cleanup_policy == "delete"


def test_production_sizing(specs: tuple[TopicSpec, ...]) -> None:
    by_field = {spec.settings_field: spec for spec in specs}
    assert by_field["posts_topic"].partitions == 12
    # Decisions are keyed like posts; equal partition counts keep a post's records co-partitioned.
    assert by_field["decisions_topic"].partitions == by_field["posts_topic"].partitions
    assert all(spec.replication_factor == 3 for spec in specs)


def test_roles_and_keys(specs: tuple[TopicSpec, ...]) -> None:
    roles = {spec.settings_field: spec.role for spec in specs}
    assert roles.pop("posts_topic") == "input"
    assert roles.pop("reviews_topic") == "input"  # review tools produce it, modfleet reads it
    assert set(roles.values()) == {"output"}
    assert {spec.key for spec in specs} == {"post_id"}


def test_files_exist_and_match_the_schema_loader(specs: tuple[TopicSpec, ...]) -> None:
    for spec in specs:
        assert spec.schema_file.is_file(), spec.schema_file
        assert spec.example_file.is_file(), spec.example_file
        assert spec.schema_file.resolve() == schema_path(spec.message_type).resolve()
        assert spec.example_file.name == f"{spec.message_type}.v1.json"


def test_every_shipped_file_is_catalogued(specs: tuple[TopicSpec, ...]) -> None:
    shipped = {p.resolve() for folder in ("schemas", "examples") for p in _files(folder)}
    catalogued = {p.resolve() for spec in specs for p in (spec.schema_file, spec.example_file)}
    assert shipped == catalogued


def test_topic_names_follow_settings_overrides() -> None:
    renamed = Settings.model_validate({field: f"acme.{field}" for field in TOPIC_FIELDS})
    assert topic_names(renamed) == {field: f"acme.{field}" for field in TOPIC_FIELDS}


def test_topic_configs_cap_min_insync_replicas(specs: tuple[TopicSpec, ...]) -> None:
    for spec in specs:
        production = spec.topic_configs()
        assert production["retention.ms"] == str(spec.retention_ms)
        assert production["cleanup.policy"] == "delete"
        assert production["min.insync.replicas"] == "2"
        # The embedded stack has one broker: acks=all must still be satisfiable.
        assert spec.topic_configs(replication_factor=1)["min.insync.replicas"] == "1"


def test_dead_letters_fit_a_full_original(specs: tuple[TopicSpec, ...]) -> None:
    (spec,) = [s for s in specs if s.message_type == "dead_letter"]
    base64_of_one_mib = 4 * ((1024 * 1024 + 2) // 3)
    assert int(spec.topic_configs()["max.message.bytes"]) > base64_of_one_mib + 64 * 1024


def test_delivery_and_headers_are_declared(document: dict[str, Any]) -> None:
    assert isinstance(document["catalogue_version"], int)
    assert document["delivery"]["guarantee"] == "at-least-once"
    assert "decision_id" in document["delivery"]["notes"]
    headers = {h["name"]: h for h in document["headers"]}
    assert set(headers) == {"content-type", "traceparent", "tracestate"}
    assert headers["content-type"]["value"] == "application/json"


def test_every_topic_lists_producers_and_consumers(document: dict[str, Any]) -> None:
    for topic in document["topics"]:
        assert topic["producers"], topic["name"]
        assert topic["consumers"], topic["name"]
        assert topic["key"]["why"].strip(), topic["name"]


def test_readme_names_every_topic(specs: tuple[TopicSpec, ...]) -> None:
    readme = (topics_dir() / "README.md").read_text(encoding="utf-8")
    for spec in specs:
        assert f"`{spec.name}`" in readme


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"partitions": 0}, "partitions"),
        ({"partitions": True}, "partitions"),
        ({"role": "sideways"}, "role"),
        ({"message": {"type": "tweet", "schema": "s.json", "example": "e.json"}}, "type"),
        ({"name": ""}, "name"),
        ({"configs": {"min.insync.replicas": "two"}}, "min.insync.replicas"),
    ],
)
def test_malformed_entries_are_refused(
    tmp_path: Path, document: dict[str, Any], change: dict[str, Any], complaint: str
) -> None:
    broken = {**document, "topics": [{**document["topics"][0], **change}]}
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(CatalogueInvalid, match=complaint):
        load_catalogue(path)


def test_duplicate_topics_are_refused(tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump({"topics": document["topics"][:1] * 2}), encoding="utf-8")
    with pytest.raises(CatalogueInvalid, match="share"):
        load_catalogue(path)


def test_missing_catalogue_is_a_fatal_error(tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="cannot read"):
        load_catalogue(tmp_path / "absent.yaml")


def _files(folder: str) -> list[Path]:
    return sorted((topics_dir() / folder).glob("*.json"))
