"""Step 3 of the pipeline: repeat verdicts from Redis."""

from modfleet.cache.verdicts import VerdictCache, cache_key, connect_cache

__all__ = ["VerdictCache", "cache_key", "connect_cache"]
