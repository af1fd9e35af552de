"""Traces, logs and the per-batch trace of the stream worker."""

from modfleet.telemetry.logs import logging_config
from modfleet.telemetry.tracing import BatchTrace, Tracing, setup_tracing

__all__ = ["BatchTrace", "Tracing", "logging_config", "setup_tracing"]
