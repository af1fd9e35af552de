"""Reviewer outcomes joined with decisions: agreement, live and per time range."""

from modfleet.reviews.agreement import Tally, render
from modfleet.reviews.join import Join, Rejected, parse

__all__ = ["Join", "Rejected", "Tally", "parse", "render"]
