"""Shadow policies: what a candidate policy would have decided, next to what live decided."""

from modfleet.shadow.report import Comparison, compare, read_decisions

__all__ = ["Comparison", "compare", "read_decisions"]
