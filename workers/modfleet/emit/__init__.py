"""Step 6 of the pipeline: decisions, escalations and dead-letters as keyed Kafka messages."""

from modfleet.emit.budget import Budget
from modfleet.emit.dead_letter import dead_letter_message, minimal_dead_letter
from modfleet.emit.messages import (
    Outbound,
    Topics,
    decision_id,
    decision_message,
    escalation_message,
)

__all__ = [
    "Budget",
    "Outbound",
    "Topics",
    "dead_letter_message",
    "decision_id",
    "decision_message",
    "escalation_message",
    "minimal_dead_letter",
]
