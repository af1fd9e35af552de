"""The embedded stack: a Kafka-compatible broker and Redis on free local ports, no Docker."""

from modfleet.stack.services import LocalBroker, LocalRedis, free_port

__all__ = ["LocalBroker", "LocalRedis", "free_port"]
