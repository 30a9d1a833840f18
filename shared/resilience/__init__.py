"""Resilience for calls to remote services: deadlines, Retry-After, backoff, circuit breakers."""

from shared.resilience.breaker import (
    BREAKERS_CONTAINER,
    BreakerBoard,
    BreakerConflict,
    BreakerPolicy,
    BreakerState,
    BreakerStore,
    CosmosBreakerStore,
    MemoryBreakerStore,
    Stored,
)
from shared.resilience.retry import Deadline, cap, full_jitter_backoff, parse_retry_after

__all__ = [
    "BREAKERS_CONTAINER",
    "BreakerBoard",
    "BreakerConflict",
    "BreakerPolicy",
    "BreakerState",
    "BreakerStore",
    "CosmosBreakerStore",
    "Deadline",
    "MemoryBreakerStore",
    "Stored",
    "cap",
    "full_jitter_backoff",
    "parse_retry_after",
]
