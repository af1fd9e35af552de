"""Step 2 of the pipeline: canonical text and its content hash."""

from modfleet.normalise.markup import TextFormat
from modfleet.normalise.text import Normalised, normalise, read_budget, windows, writable

__all__ = [
    "Normalised",
    "TextFormat",
    "normalise",
    "read_budget",
    "windows",
    "writable",
]
