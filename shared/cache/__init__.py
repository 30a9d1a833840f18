"""A semantic answer cache that is safe by default.

Partitioned by tenant, access scope, model tier and system prompt (keys.py); an exact-match
fast path and an in-process similarity search with a token guard (cache.py, matrix.py, l1.py,
guards.py); bypass rules (bypass.py); Cosmos storage with TTL checked in code and bounded
partitions (entries.py, eviction.py); invalidation by cited document; per-instance stats
(counters.py). Quality and latency are measured by bench/cache_quality.py and cache_latency.py.
"""

from shared.cache.bypass import Bypass, bypass
from shared.cache.cache import CacheScope, SemanticCache
from shared.cache.entries import CONTAINER, CacheHit, container_spec
from shared.cache.guards import guard_passes, guard_reason
from shared.cache.keys import cache_partition, normalise_question, question_key
from shared.cache.options import CacheOptions

__all__ = [
    "CONTAINER",
    "Bypass",
    "CacheHit",
    "CacheOptions",
    "CacheScope",
    "SemanticCache",
    "bypass",
    "cache_partition",
    "container_spec",
    "guard_passes",
    "guard_reason",
    "normalise_question",
    "question_key",
]
