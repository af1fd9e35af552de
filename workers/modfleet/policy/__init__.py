"""Policy packs: the YAML that Trust & Safety staff edit, its validation, and the decision rule."""

from modfleet.policy.load import PolicyInvalid, Problem, check_policy, load_policy
from modfleet.policy.model import (
    SEVERITY,
    Action,
    Category,
    Example,
    Judgement,
    ModelRef,
    Policy,
    Threshold,
)

__all__ = [
    "SEVERITY",
    "Action",
    "Category",
    "Example",
    "Judgement",
    "ModelRef",
    "Policy",
    "PolicyInvalid",
    "Problem",
    "Threshold",
    "check_policy",
    "load_policy",
]
