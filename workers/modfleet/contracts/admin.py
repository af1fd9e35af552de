"""Create the catalogue's topics on a cluster (the topic-init job and the embedded stack)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from modfleet.contracts.catalogue import TopicSpec, load_catalogue
from modfleet.errors import FatalError, RecoverableError
from modfleet.kafka import client_options
from modfleet.settings import Settings

log = logging.getLogger(__name__)


def planned_topics(
    settings: Settings, *, replication_factor: int | None = None, partitions: int | None = None
) -> list[NewTopic]:
    """The catalogue as NewTopic requests, under the names Settings gives them."""
    return [_new_topic(spec, settings, replication_factor, partitions) for spec in load_catalogue()]


def _new_topic(
    spec: TopicSpec, settings: Settings, replication: int | None, partitions: int | None
) -> NewTopic:
    name = getattr(settings, spec.settings_field)
    return NewTopic(
        name,
        num_partitions=partitions or spec.partitions,
        replication_factor=replication or spec.replication_factor,
        topic_configs=spec.topic_configs(replication),
    )


async def create_topics(
    settings: Settings, *, replication_factor: int | None = None, partitions: int | None = None
) -> list[str]:
    """Create what is missing; returns the names created. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="modfleet-topic-init")
    try:
        await admin.start()
    except KafkaError as exc:
        raise RecoverableError(f"cannot reach Kafka at {settings.broker_url}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        wanted = planned_topics(
            settings, replication_factor=replication_factor, partitions=partitions
        )
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await _create(admin, missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> None:
    try:
        response = await admin.create_topics(topics)
    except TopicAlreadyExistsError:
        return  # another replica's topic-init won the race
    except KafkaError as exc:
        raise FatalError(f"creating topics failed: {exc}") from exc
    for name, code, message in _errors(response):
        if code not in (0, TopicAlreadyExistsError.errno):
            raise FatalError(f"creating topic {name} failed with error {code}: {message}")
    log.info("created topics %s", ", ".join(t.name for t in topics))


def _errors(response: object) -> list[tuple[str, int, str | None]]:
    rows = getattr(response, "topic_errors", None) or getattr(response, "topics", None) or []
    out: list[tuple[str, int, str | None]] = []
    for row in rows:
        name, code, *rest = row
        out.append((name, code, rest[0] if rest else None))
    return out
