"""faust's aiokafka transport, with the consumer's fetch wait ours to set.

faust builds its worker's consumer with ``fetch_max_wait_ms=1500`` and no setting to change it.
How long a fetch may wait is how late a record can be seen when the broker does not answer the
fetch early: the embedded broker (Tansu) leaves a fetch for several partitions waiting while
records arrive on them, so at 1,380 posts/s across 12 partitions the faust passthrough's own
p50 latency was 300 ms and its p99 800 ms, and with a 100 ms wait 61 ms and 117 ms
(docs/benchmarks.md, fourth pass). Apache Kafka answers as soon as ``fetch.min.bytes`` (1) is
there, so a shorter wait only adds an empty fetch now and then to an idle partition set.

The same transport reads records whose header keys are not UTF-8 instead of stalling their
partition on them (``lenient``), and inflates no compressed batch past a bound (``inflate``).
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from modfleet.errors import FatalError
from modfleet.stream import inflate, lenient

# aiokafka's consumer reads this attribute when it starts and builds its fetcher; faust gives no
# other way in. Checked when the app is built (that aiokafka's consumer still sets it) and again
# on the consumer itself, so that an aiokafka that renames it fails loudly, not silently slow.
_FETCH_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"


def use_consumer(
    app: faust.App,
    fetch_max_wait_ms: int,
    max_batch_inflated_bytes: int = inflate.DEFAULT_MAX_BATCH_INFLATED_BYTES,
) -> None:
    """Give ``app`` a consumer whose fetches wait at most ``fetch_max_wait_ms`` for records and
    inflate no batch past ``max_batch_inflated_bytes`` (process-wide, as aiokafka's codecs are).

    Call it before the app's topics are declared: they reach the transport."""
    # On the caller's thread, at start-up: faust's consumer thread builds the consumer later,
    # where a failure would be far from its cause.
    if _FETCH_WAIT_ATTRIBUTE not in aiokafka.AIOKafkaConsumer.__init__.__code__.co_names:
        raise FatalError(_no_attribute())
    install_readers(max_batch_inflated_bytes)

    class _Thread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            set_fetch_wait(consumer, fetch_max_wait_ms)
            return consumer

    class _Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return _Thread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(faust_aiokafka.Transport):
        Consumer = _Consumer

    app.transport = _Transport(app.conf.broker_consumer, app)


def install_readers(max_batch_inflated_bytes: int) -> None:
    """Make every aiokafka consumer of this process read header keys that are not UTF-8 and
    inflate no compressed batch past ``max_batch_inflated_bytes`` (process-wide, as aiokafka's
    module names are): the worker's consumer and the commands' (``modfleet.kafka.consumer``)."""
    lenient.install()
    inflate.install(max_batch_inflated_bytes)


def set_fetch_wait(consumer: aiokafka.AIOKafkaConsumer, fetch_max_wait_ms: int) -> None:
    """Set a consumer's fetch wait before it starts."""
    if not isinstance(getattr(consumer, _FETCH_WAIT_ATTRIBUTE, None), int):
        raise FatalError(_no_attribute())
    setattr(consumer, _FETCH_WAIT_ATTRIBUTE, fetch_max_wait_ms)


def _no_attribute() -> str:
    return (
        f"this aiokafka ({aiokafka.__version__}) keeps no {_FETCH_WAIT_ATTRIBUTE}: "
        "the consumer's fetch wait (MODFLEET_CONSUMER_FETCH_MAX_WAIT_MS) cannot be set"
    )
