"""Kafka connection options from Settings, for faust and for plain aiokafka clients, and the
consumer the commands beside the worker read with."""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from modfleet.ingest.decode import Rejection, UnreadRecord
from modfleet.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def faust_credentials(settings: Settings) -> Any:
    """faust's credentials object for the configured security protocol, or None."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def compression_type(settings: Settings) -> str | None:
    """The producer's codec as faust and aiokafka name it (None: uncompressed)."""
    codec = settings.producer_compression
    return None if codec == "none" else codec


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A plain aiokafka consumer that reads as the worker's does: no compressed batch inflates
    past ``max_batch_inflated_bytes`` (each of its offsets comes out as a record ``unread``
    names), and a header key that is not UTF-8 stops nothing.

    For `reviews run`, `reviews report`, `export`, `replay` and `shadow report`: the reviews and
    posts topics take writes from outside the fleet, and a bomb there would otherwise end the
    command, after each restart, at the same offset."""
    from modfleet.stream.transport import install_readers  # the stream's, loaded on use

    install_readers(settings.max_batch_inflated_bytes)
    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


def unread(record: Any) -> Rejection | None:
    """Why ``consumer`` did not read ``record`` (its batch would inflate too far), or None.

    ``record`` is aiokafka's, which carries the UnreadRecord, or the UnreadRecord itself; it
    has no key or value. Only the consumer's fetch path makes one, never a record's bytes."""
    letter = record if type(record) is UnreadRecord else getattr(record, "checksum", None)
    return letter.why if type(letter) is UnreadRecord else None
