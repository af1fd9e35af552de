"""Step 6 of the pipeline: decisions, escalations and dead-letters as keyed Kafka messages."""

from modfleet.emit.messages import (
    Outbound,
    Topics,
    dead_letter_message,
    decision_id,
    decision_message,
    escalation_message,
)

__all__ = [
    "Outbound",
    "Topics",
    "dead_letter_message",
    "decision_id",
    "decision_message",
    "escalation_message",
]
