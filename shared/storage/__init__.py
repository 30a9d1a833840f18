"""Where docgate keeps things: blob and Cosmos access, and the two ways state is shared.

- `blobs`: the async blob client factory and idempotent container set-up.
- `cosmos`: `CosmosStore`, typed async CRUD and queries that hide the emulator's gaps.
- `mirror`: `PartitionMirror`, an in-process copy of Cosmos partitions kept fresh by `_ts`
  polling (the semantic cache's L1 and retrieval's memory index).
- `cas`: `CasStore` and `compare_and_swap`, one item per key written with ETag
  compare-and-swap (circuit breakers, rate-limit buckets, budget counters).
"""
