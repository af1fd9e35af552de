"""Which partition an output goes to, chosen by us so that outputs can go out as record batches.

Every output is keyed by its post's id (topics/README.md), and the contract is Kafka's: a key
picks a partition, the same one every time. A post keyed by that same id sits on the partition
its key picked; where an output that names its post record goes to a topic with as many
partitions as the posts topic (decisions, by the catalogue), it goes to the post's partition
number, which is what the key would pick under the upstream producer's partitioner: nothing to
compute, and the post and its decision stay co-partitioned even where that partitioner is not
Kafka's default. Any other output (escalations and dead letters on their 3 partitions, shadow
decisions, which name no record) gets Kafka's default (murmur2 of the key), as a plain ``send``
would give it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from modfleet.emit.messages import Outbound


class Partitioner:
    """Partitions for one batch's outputs, from the producer's view of the cluster."""

    def __init__(self, counts: dict[str, int], cluster: Any) -> None:
        self._counts = counts  # topic -> partitions, for every topic the batch touches
        self._cluster = cluster
        self._default = DefaultPartitioner()
        self._murmured: dict[str, tuple[list[int], list[int]]] = {}  # topic -> all, available

    @classmethod
    async def of(cls, producer: Any, outbound: Sequence[Outbound]) -> Partitioner:
        """Metadata for the batch's output topics and its posts' topics; a topic the producer
        has not seen yet is looked up once (later batches find it cached)."""
        topics = {m.topic for m in outbound}
        topics.update(m.source.topic for m in outbound if m.source is not None)
        counts: dict[str, int] = {}
        for topic in topics:
            known = producer.client.cluster.partitions_for_topic(topic)
            if not known:
                try:
                    known = await producer.partitions_for(topic)
                except KafkaError:
                    known = None  # its messages take the per-message path, which retries
            counts[topic] = len(known) if known else 0
        return cls(counts, producer.client.cluster)

    def partition(self, message: Outbound) -> int | None:
        """The message's partition; None where the topic's partitions are not known."""
        count = self._counts.get(message.topic, 0)
        if not count:
            return None
        source = message.source
        if (
            source is not None
            and source.key == message.key
            and self._counts.get(source.topic) == count
            and 0 <= source.partition < count
        ):
            return source.partition
        lists = self._murmured.get(message.topic)
        if lists is None:  # once a batch: a batch is partitioned against one view of the cluster
            cluster, topic = self._cluster, message.topic
            everything = sorted(cluster.partitions_for_topic(topic) or range(count))
            available = sorted(cluster.available_partitions_for_topic(topic) or ())
            lists = self._murmured[message.topic] = (everything, available)
        return int(self._default(message.key, *lists))
