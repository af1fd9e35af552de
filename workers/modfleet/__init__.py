"""modfleet: a moderation worker fleet for Kafka event streams."""

from modfleet.errors import FatalError, ModfleetError, RecoverableError, RejectedInput
from modfleet.settings import Settings

__all__ = ["FatalError", "ModfleetError", "RecoverableError", "RejectedInput", "Settings"]
__version__ = "0.1.0"
