"""Step 3 of the pipeline: repeat verdicts from Redis, sealed, behind a breaker."""

from modfleet.cache.seal import REJECTED_REASONS, Sealer
from modfleet.cache.verdicts import VerdictCache, cache_key, connect_cache, key_head

__all__ = ["REJECTED_REASONS", "Sealer", "VerdictCache", "cache_key", "connect_cache", "key_head"]
