"""Which entries leave a partition that holds more than its maximum.

Expired entries always go first (they are dead already; only the emulator still keeps them).
The entry just stored is protected: evicting it at once would make the store pointless (and
plain LFU would, since a new entry has no hits yet). Then, by policy:
- lru: least recently used first: oldest `last_hit` (an entry never hit counts from `created`);
- lfu: least frequently used first: fewest `hits`, ties broken by oldest `last_hit`;
- ttl: soonest to expire first: smallest `expires_at` (with one TTL for all, the oldest).
`hits`/`last_hit` are what Cosmos holds plus this instance's unflushed hits (the caller flushes
first); other instances' unflushed hits (at most hit_flush_seconds old) are not seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.cache.entries import is_fresh
from shared.cache.options import Eviction


def _number(item: Mapping[str, Any], name: str) -> float:
    """A numeric field, 0 when missing."""
    value = item.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def _policy_key(item: Mapping[str, Any], policy: Eviction) -> tuple[float, ...]:
    """Sort key: smaller leaves first."""
    last_used = max(_number(item, "last_hit"), _number(item, "created"))
    if policy == "lfu":
        return (_number(item, "hits"), last_used)
    if policy == "ttl":
        return (_number(item, "expires_at"), _number(item, "created"))
    return (last_used, _number(item, "created"))


def choose_victims(
    items: Sequence[Mapping[str, Any]],
    keep: int,
    policy: Eviction,
    now: float,
    protect: str | None = None,
) -> list[str]:
    """The ids to delete so that at most `keep` fresh entries remain (`protect` stays)."""
    expired = [item["id"] for item in items if not is_fresh(item, now)]
    fresh = [item for item in items if is_fresh(item, now)]
    excess = max(0, len(fresh) - keep)
    candidates = sorted((item for item in fresh if item["id"] != protect),
                        key=lambda item: (_policy_key(item, policy), item["id"]))  # fmt: skip
    return expired + [item["id"] for item in candidates[:excess]]


__all__ = ["choose_victims"]
