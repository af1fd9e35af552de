"""Step 2 of the pipeline: canonical text and its content hash."""

from modfleet.normalise.markup import TextFormat
from modfleet.normalise.text import (
    Normalised,
    html_reach,
    normalise,
    read_budget,
    read_rendered,
    windows,
    writable,
)

__all__ = [
    "Normalised",
    "TextFormat",
    "html_reach",
    "normalise",
    "read_budget",
    "read_rendered",
    "windows",
    "writable",
]
