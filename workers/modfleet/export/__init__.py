"""Training data from the fleet's own traffic: decisions, reviews and the posts' text."""
