"""SemanticCache against the Cosmos emulator with the real MiniLM embedder."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest
from azure.cosmos.aio import CosmosClient

from shared.cache import CacheOptions, CacheScope, SemanticCache
from shared.chat.service import ChatResult, Citation
from shared.embeddings.local import LocalEmbedder
from shared.llm.types import Usage
from shared.security.principal import Principal
from shared.storage.cosmos import EMULATOR, CosmosStore

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.emulators

PROMPT = "Answer from the sources only."
ALICE = Principal("alice", "contoso", groups=("finance", "staff"))
EMBEDDER = LocalEmbedder()
MARGIN = "What was the operating margin in Q3 2023?"
MARGIN_PARAPHRASE = "What was the Q3 2023 operating margin?"


class FakeClock:
    """A settable epoch clock shared by the store and the cache."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def answer(text: str, *documents: str) -> ChatResult:
    """A cited ChatResult citing `documents`."""
    citations = [
        Citation(number, document, f"{document}.pdf", 1, [1], f"{document}-c1", "quote")
        for number, document in enumerate(documents, start=1)
    ]
    return ChatResult(text, citations, "gpt-test", "standard", "eu", Usage(10, 5), "trace-1")


@pytest.fixture
def clock() -> FakeClock:
    """The clock for TTL decisions."""
    return FakeClock()


@pytest.fixture
async def store(
    cosmos_client: CosmosClient, unique_name: str, clock: FakeClock
) -> AsyncIterator[CosmosStore]:
    """A store on a database of its own."""
    yield CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR, clock=clock)
    await cosmos_client.delete_database(unique_name)


@pytest.fixture
def make_cache(store: CosmosStore, clock: FakeClock) -> Callable[..., SemanticCache]:
    """Build a cache instance (several may share the store, like several hosts)."""

    def build(**overrides: object) -> SemanticCache:
        options = CacheOptions(**{"refresh_seconds": 0.0, "hit_flush_seconds": 3600, **overrides})
        return SemanticCache(options, store, EMBEDDER, clock=clock)

    return build


@pytest.fixture
async def cache(make_cache: Callable[..., SemanticCache]) -> SemanticCache:
    """One cache instance with its container created."""
    instance = make_cache()
    await instance.ensure_container()
    return instance


def scope_of(cache: SemanticCache, principal: Principal = ALICE, **kwargs: object) -> CacheScope:
    """The scope for `principal` with all its groups."""
    return cache.scope(principal, principal.groups, "standard", PROMPT, **kwargs)


async def test_exact_path_replays_the_answer(cache: SemanticCache) -> None:
    scope = scope_of(cache)
    assert await cache.lookup(scope, MARGIN) is None
    assert await cache.store(scope, MARGIN, answer("It was 12% [1].", "report"))
    hit = await cache.lookup(scope, "  what was the operating margin in q3 2023 ", trace_id="t2")
    assert hit is not None and hit.path == "exact" and hit.similarity == 1.0
    assert hit.result.answer == "It was 12% [1]." and hit.result.cached
    assert hit.result.citations[0].document_id == "report"
    assert hit.result.usage == Usage() and hit.result.trace_id == "t2"


async def test_paraphrase_hits_by_similarity(cache: SemanticCache) -> None:
    scope = scope_of(cache)
    await cache.store(scope, MARGIN, answer("12% [1].", "report"))
    hit = await cache.lookup(scope, MARGIN_PARAPHRASE)
    assert hit is not None and hit.path == "semantic"
    assert 0.90 <= hit.similarity <= 1.0 and hit.cached_question == MARGIN


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("What was Contoso's revenue in 2022?", "What was Contoso's revenue in 2023?"),
        ("What are sales in the north region?", "What are sales in the south region?"),
        ("What was Contoso's revenue in 2022?", "What was Fabrikam's revenue in 2022?"),
    ],
)
async def test_near_misses_do_not_hit(
    make_cache: Callable[..., SemanticCache], cached: str, asked: str
) -> None:
    # A looser threshold makes every pair a candidate, so the guard is what refuses it.
    cache = make_cache(similarity_threshold=0.50)
    await cache.ensure_container()
    scope = scope_of(cache)
    await cache.store(scope, cached, answer("cached [1].", "report"))
    assert await cache.lookup(scope, asked) is None
    stats = (await cache.stats("contoso"))["partitions"][scope.partition]
    assert stats["guard_rejections"] == 1 and stats["misses"] == 1


async def test_tenants_never_share_answers(cache: SemanticCache) -> None:
    mine, theirs = scope_of(cache), scope_of(cache, Principal("alice", "fabrikam", ALICE.groups))
    await cache.store(mine, MARGIN, answer("contoso's [1].", "report"))
    assert await cache.lookup(theirs, MARGIN) is None
    assert await cache.lookup(theirs, MARGIN_PARAPHRASE) is None


async def test_stats_show_only_the_asking_tenants_partitions(cache: SemanticCache) -> None:
    mine, theirs = scope_of(cache), scope_of(cache, Principal("zed", "fabrikam", ("staff",)))
    await cache.store(mine, MARGIN, answer("a [1].", "d"))
    await cache.store(theirs, MARGIN, answer("b [1].", "d"))
    await cache.lookup(theirs, MARGIN)
    await cache.lookup(theirs, "Something else entirely?")
    ours = await cache.stats("contoso")
    assert set(ours["partitions"]) == {mine.partition}
    assert ours["partitions"][mine.partition]["tenant"] == "contoso"
    assert (ours["overall"]["size"], ours["overall"]["stores"]) == (1, 1)
    assert (ours["overall"]["hits"], ours["overall"]["misses"]) == (0, 0)
    fabrikam = await cache.stats("fabrikam")
    assert set(fabrikam["partitions"]) == {theirs.partition}
    assert (fabrikam["overall"]["hits"], fabrikam["overall"]["misses"]) == (1, 1)


async def test_access_scopes_within_a_tenant_never_share(cache: SemanticCache) -> None:
    finance = cache.scope(ALICE, ["finance"], "standard", PROMPT, user_acls=False)
    staff_only = Principal("carol", "contoso", groups=("staff",))
    staff = cache.scope(staff_only, ["staff"], "standard", PROMPT, user_acls=False)
    await cache.store(finance, MARGIN, answer("secret [1].", "report"))
    assert await cache.lookup(staff, MARGIN) is None
    assert await cache.lookup(staff, MARGIN_PARAPHRASE) is None
    other_user = Principal("bob", "contoso", groups=ALICE.groups)
    assert await cache.lookup(scope_of(cache, other_user), MARGIN) is None  # user ACLs: default
    bob_finance = cache.scope(other_user, ["finance"], "standard", PROMPT, user_acls=False)
    assert await cache.lookup(bob_finance, MARGIN) is not None  # same groups, no user ACLs


async def test_expiry_is_enforced_by_the_code(cache: SemanticCache, clock: FakeClock) -> None:
    scope = scope_of(cache)
    await cache.store(scope, MARGIN, answer("12% [1].", "report"))
    clock.now += cache.options.ttl_seconds + 1
    assert await cache.lookup(scope, MARGIN) is None
    assert await cache.lookup(scope, MARGIN_PARAPHRASE) is None
    assert (await cache.stats("contoso"))["overall"]["size"] == 0


async def test_uncited_and_flagged_answers_are_not_stored(cache: SemanticCache) -> None:
    scope = scope_of(cache)
    assert not await cache.store(scope, MARGIN, answer("Not found."))
    assert not await cache.store(scope, MARGIN, answer("12% [1].", "r"), flagged=True)
    assert await cache.lookup(scope, MARGIN) is None


QUESTIONS = (
    "How do I reset my VPN password?",
    "What is the parental leave policy?",
    "Who is the data protection officer?",
)


@pytest.mark.parametrize(("policy", "evicted"), [("lru", 0), ("lfu", 1), ("ttl", 0)])
async def test_max_entries_and_eviction_policy(
    make_cache: Callable[..., SemanticCache], clock: FakeClock, policy: str, evicted: int
) -> None:
    cache = make_cache(max_entries_per_partition=2, eviction=policy)
    await cache.ensure_container()
    scope = scope_of(cache)
    for question in QUESTIONS[:2]:
        await cache.store(scope, question, answer("a [1].", "doc"))
        clock.now += 1
    for _ in range(3):  # the first entry is used most, but the second most recently
        assert await cache.lookup(scope, QUESTIONS[0]) is not None
    clock.now += 1
    assert await cache.lookup(scope, QUESTIONS[1]) is not None
    clock.now += 1
    await cache.store(scope, QUESTIONS[2], answer("c [1].", "doc"))
    present = [await cache.lookup(scope, question) is not None for question in QUESTIONS]
    assert present == [index != evicted for index in range(3)]
    assert (await cache.stats("contoso"))["overall"]["evictions"] == 1


async def test_invalidation_reaches_another_instances_l1(
    make_cache: Callable[..., SemanticCache], cache: SemanticCache
) -> None:
    other = make_cache(refresh_seconds=3600)  # its L1 will not refresh during the test
    scope = scope_of(cache)
    await cache.store(scope, MARGIN, answer("12% [1].", "report"))
    await cache.store(scope, "What is the parental leave policy?", answer("x [1].", "hr"))
    assert (await other.lookup(scope, MARGIN_PARAPHRASE)) is not None  # loads other's L1
    assert await cache.invalidate_documents(["report"], tenant="contoso") == 1
    assert await other.lookup(scope, MARGIN_PARAPHRASE) is None
    assert await other.lookup(scope, MARGIN) is None
    assert await cache.lookup(scope, MARGIN_PARAPHRASE) is None
    assert await other.lookup(scope, "What is the parental leave policy?") is not None


async def test_l1_picks_up_entries_written_by_another_instance(
    make_cache: Callable[..., SemanticCache], cache: SemanticCache
) -> None:
    other = make_cache()
    scope = scope_of(cache)
    assert await other.lookup(scope, MARGIN_PARAPHRASE) is None  # other's L1 loaded, empty
    await cache.store(scope, MARGIN, answer("12% [1].", "report"))
    hit = await other.lookup(scope, MARGIN_PARAPHRASE)
    assert hit is not None and hit.path == "semantic"


async def test_stats_and_hit_counters(cache: SemanticCache) -> None:
    scope = scope_of(cache)
    await cache.lookup(scope, MARGIN)
    await cache.store(scope, MARGIN, answer("12% [1].", "report"))
    await cache.lookup(scope, MARGIN)
    await cache.lookup(scope, MARGIN_PARAPHRASE)
    assert await cache.flush_hits() == 1
    overall = (await cache.stats("contoso"))["overall"]
    assert (overall["exact_hits"], overall["semantic_hits"], overall["misses"]) == (1, 1, 1)
    assert overall["hit_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert (overall["size"], overall["stores"], overall["stored_hits"]) == (1, 1, 2)


async def test_clear_by_tenant(cache: SemanticCache) -> None:
    mine = scope_of(cache)
    theirs = scope_of(cache, Principal("zed", "fabrikam", ("staff",)))
    await cache.store(mine, MARGIN, answer("a [1].", "d"))
    await cache.store(theirs, MARGIN, answer("b [1].", "d"))
    assert await cache.clear("contoso") == 1
    assert await cache.lookup(mine, MARGIN) is None
    assert await cache.lookup(theirs, MARGIN) is not None
    assert await cache.clear() == 1
