"""The ``modfleet`` command."""

from __future__ import annotations

import click

from modfleet.policy.commands import policy


@click.group()
@click.version_option(package_name="modfleet")
def main() -> None:
    """Moderation worker fleet: Kafka posts in, policy decisions out."""


main.add_command(policy)
