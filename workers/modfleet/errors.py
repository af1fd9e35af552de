"""The two kinds of failure, named for what the caller can do about them."""

from __future__ import annotations


class ModfleetError(Exception):
    """Base of every error modfleet raises on purpose."""


class RecoverableError(ModfleetError):
    """Try again: a timeout, a dropped connection, a model server that is busy."""


class FatalError(ModfleetError):
    """Do not retry: the configuration, the input or the model is wrong."""
