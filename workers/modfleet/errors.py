"""The kinds of failure, named for what the caller can do about them."""

from __future__ import annotations


class ModfleetError(Exception):
    """Base of every error modfleet raises on purpose."""


class RecoverableError(ModfleetError):
    """Try again: a timeout, a dropped connection, a model server that is busy."""


class FatalError(ModfleetError):
    """Do not retry: the configuration or the model is wrong, for every input alike."""


class RejectedInput(ModfleetError):
    """Give up on this input and go on with the others: the model refused this one request
    (a prompt over its context length, say) and a retry would be refused the same way."""
