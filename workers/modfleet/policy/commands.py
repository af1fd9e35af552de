"""``modfleet policy ...`` (placeholder until the policy package lands)."""

from __future__ import annotations

import click


@click.group()
def policy() -> None:
    """Work with policy packs."""
