"""The topic contracts: which topics exist (``topics/catalogue.yaml``) and what their messages
must look like (``topics/schemas``). Systems in other languages read those files directly."""

from modfleet.contracts.catalogue import (
    CatalogueInvalid,
    TopicSpec,
    default_catalogue_path,
    load_catalogue,
    topic_names,
)
from modfleet.contracts.schemas import (
    MESSAGE_TYPES,
    MessageInvalid,
    MessageType,
    SchemaViolation,
    check,
    first_violation,
    schema,
    schema_path,
    validator,
    violations,
)

__all__ = [
    "MESSAGE_TYPES",
    "CatalogueInvalid",
    "MessageInvalid",
    "MessageType",
    "SchemaViolation",
    "TopicSpec",
    "check",
    "default_catalogue_path",
    "first_violation",
    "load_catalogue",
    "schema",
    "schema_path",
    "topic_names",
    "validator",
    "violations",
]
