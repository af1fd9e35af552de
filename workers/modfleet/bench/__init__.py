"""``modfleet bench``: throughput, Redis round trips, latency and memory of one embedded fleet.

Every stage reads the same posts from the same broker, so that the ratios between them say how
much each layer (Kafka client, faust, our pipeline, the model) costs. See docs/benchmarks.md.
"""
