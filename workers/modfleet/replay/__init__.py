"""Producing posts onto the posts topic and collecting what the fleet decided about them."""

from modfleet.replay.io import Outcomes, collect_outcomes, post_key, produce_posts

__all__ = ["Outcomes", "collect_outcomes", "post_key", "produce_posts"]
