"""Step 2 of the pipeline: canonical text and its content hash."""

from modfleet.normalise.text import Normalised, normalise, writable

__all__ = ["Normalised", "normalise", "writable"]
