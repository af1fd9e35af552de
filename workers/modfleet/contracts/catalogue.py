"""The topic catalogue (``topics/catalogue.yaml``) as typed records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args

import yaml

from modfleet.contracts.schemas import MESSAGE_TYPES, MessageType
from modfleet.errors import FatalError
from modfleet.resources import topics_dir

if TYPE_CHECKING:
    from modfleet.settings import Settings

Role = Literal["input", "output"]
CleanupPolicy = Literal["delete", "compact", "compact,delete"]
_ROLES: tuple[Role, ...] = get_args(Role)
_CLEANUP_POLICIES: tuple[CleanupPolicy, ...] = get_args(CleanupPolicy)
_T = TypeVar("_T")
_MIN_ISR = "min.insync.replicas"


class CatalogueInvalid(FatalError):
    """topics/catalogue.yaml is malformed."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the catalogue, with production sizing."""

    name: str
    description: str
    role: Role
    settings_field: str
    message_type: MessageType
    schema_file: Path
    example_file: Path
    partitions: int
    replication_factor: int
    key: str  # the message field whose UTF-8 bytes are the record key
    retention_ms: int
    cleanup_policy: CleanupPolicy
    # Further Kafka topic configs (min.insync.replicas, max.message.bytes), as name/value pairs
    # so the record stays hashable.
    configs: tuple[tuple[str, str], ...] = ()

    def topic_configs(self, replication_factor: int | None = None) -> dict[str, str]:
        """Every Kafka topic config to create the topic with, keyed by Kafka's names.

        Pass the replication factor actually used when it differs from the catalogue's: with
        fewer replicas than min.insync.replicas every acks=all write would fail, so it is capped.
        """
        configs = {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **dict(self.configs),
        }
        replicas = replication_factor or self.replication_factor
        if int(configs.get(_MIN_ISR, "1")) > replicas:
            configs[_MIN_ISR] = str(replicas)
        return configs


def default_catalogue_path() -> Path:
    return topics_dir() / "catalogue.yaml"


def load_catalogue(path: Path | None = None) -> tuple[TopicSpec, ...]:
    """Every topic of the catalogue, in file order; file paths are resolved beside it."""
    return _load(path or default_catalogue_path())


def topic_names(settings: Settings) -> dict[str, str]:
    """Settings field -> the topic name this deployment uses (Settings may rename topics)."""
    return {spec.settings_field: _settings_topic(settings, spec) for spec in load_catalogue()}


def _settings_topic(settings: Settings, spec: TopicSpec) -> str:
    name = getattr(settings, spec.settings_field, None)
    if not isinstance(name, str):
        raise CatalogueInvalid(f"{spec.name}: Settings has no str field {spec.settings_field!r}")
    return name


@cache
def _load(path: Path) -> tuple[TopicSpec, ...]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueInvalid(f"cannot read topic catalogue {path}: {exc}") from exc
    topics = document.get("topics") if isinstance(document, Mapping) else None
    if not isinstance(topics, list) or not topics:
        raise CatalogueInvalid(f"{path}: expected a non-empty 'topics' list")
    specs = tuple(_spec(entry, path.parent) for entry in topics)
    _require_unique("name", [spec.name for spec in specs])
    _require_unique("settings_field", [spec.settings_field for spec in specs])
    return specs


def _require_unique(label: str, values: list[str]) -> None:
    if len(set(values)) != len(values):
        raise CatalogueInvalid(f"two topics share a {label}: {values}")


def _spec(entry: Any, base: Path) -> TopicSpec:
    if not isinstance(entry, Mapping):
        raise CatalogueInvalid(f"topic entry is not a mapping: {entry!r}")
    name = _text(entry, "name")
    try:
        message = _mapping(entry, "message")
        return TopicSpec(
            name=name,
            description=_text(entry, "description"),
            role=_choice(entry, "role", _ROLES),
            settings_field=_text(entry, "settings_field"),
            message_type=_choice(message, "type", MESSAGE_TYPES),
            schema_file=base / _text(message, "schema"),
            example_file=base / _text(message, "example"),
            partitions=_positive(entry, "partitions"),
            replication_factor=_positive(entry, "replication_factor"),
            key=_text(_mapping(entry, "key"), "field"),
            retention_ms=_positive(entry, "retention_ms"),
            cleanup_policy=_choice(entry, "cleanup_policy", _CLEANUP_POLICIES),
            configs=_configs(entry.get("configs") or {}),
        )
    except CatalogueInvalid as exc:
        raise CatalogueInvalid(f"topic {name}: {exc}") from exc


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueInvalid(f"{key!r} must be a non-empty string, not {value!r}")
    return value


def _mapping(entry: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = entry.get(key)
    if not isinstance(value, Mapping):
        raise CatalogueInvalid(f"{key!r} must be a mapping, not {value!r}")
    return value


def _choice(entry: Mapping[str, Any], key: str, allowed: tuple[_T, ...]) -> _T:
    value = entry.get(key)
    if value not in allowed:
        raise CatalogueInvalid(f"{key!r} must be one of {allowed}, not {value!r}")
    return cast(_T, value)


def _positive(entry: Mapping[str, Any], key: str) -> int:
    value = entry.get(key)
    # bool is an int in Python; "partitions: yes" is a typo, not one partition.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CatalogueInvalid(f"{key!r} must be a positive integer, not {value!r}")
    return value


def _configs(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        raise CatalogueInvalid(f"'configs' must be a mapping, not {raw!r}")
    configs = tuple((str(name), str(value)) for name, value in raw.items())
    if not dict(configs).get(_MIN_ISR, "1").isdigit():
        raise CatalogueInvalid(f"{_MIN_ISR!r} must be a whole number, not {raw[_MIN_ISR]!r}")
    return configs
