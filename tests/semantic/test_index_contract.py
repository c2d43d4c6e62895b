"""One contract for every vector index: memory, plain Redis, and Qdrant.

Redis is a real `redis-server`. No Qdrant server can be had on these machines, so
the Qdrant index runs against `qdrant-client`'s local mode (`url: ":memory:"`), which
implements the same API in process; the code path through `AsyncQdrantClient` is the
one a server would see.

How many prompts a store holds for a bucket is read the way a user would look: the
admin port's `prompts` (`count()`) for the memory and Qdrant stores (a fresh store per
test, one bucket in it), and `LLEN` of the bucket's list in Redis (whose `count()` is
None). It counts what the store keeps, expired or not, not what a search returns.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from qdrant_client import AsyncQdrantClient

from llmcache_sidecar.semantic.embedder import Vector
from llmcache_sidecar.semantic.index import MemoryIndex, Stored, VectorIndex
from llmcache_sidecar.semantic.qdrant_index import QdrantIndex
from llmcache_sidecar.semantic.redis_index import RedisIndex
from tests.realparts import RedisServer

BOUND = 4


def unit(*values: float) -> Vector:
    norm = math.sqrt(sum(v * v for v in values))
    return array("f", [v / norm for v in values])


def stored(key: str, vector: Vector, *, ttl: float = 60.0, text: str | None = None, now: float | None = None) -> Stored:
    expires_at = (time.time() if now is None else now) + ttl
    return Stored(key=key, text=text or f"prompt {key}", vector=vector, expires_at=expires_at)


@pytest.fixture(params=["memory", "redis", "qdrant"])
async def index(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[VectorIndex]:
    made: VectorIndex
    if request.param == "memory":
        made = MemoryIndex(max_per_bucket=BOUND, max_buckets=100)
    elif request.param == "redis":
        made = RedisIndex.from_url(redis_server.url, password=None, timeout=1.0, max_per_bucket=BOUND)
    else:
        made = QdrantIndex.from_url(":memory:", api_key=None, collection="contract", timeout=5.0, max_per_bucket=BOUND)
    yield made
    await made.aclose()


Held = Callable[[str], Awaitable[int]]


@pytest.fixture
async def held(index: VectorIndex, redis_server: RedisServer) -> AsyncIterator[Held]:
    """How many prompts the store keeps for a bucket (see the module docstring)."""
    client = aioredis.Redis.from_url(redis_server.url)

    async def count(bucket: str) -> int:
        if isinstance(index, RedisIndex):
            return int(await client.llen(bucket))
        total = await index.count()
        assert total is not None
        return total

    yield count
    await client.aclose()


@pytest.fixture
def bucket() -> str:
    return uuid.uuid4().hex  # the Redis server is shared by the whole run


async def test_a_prompt_is_found_by_its_own_vector(index: VectorIndex, bucket: str) -> None:
    await index.add(bucket, stored("k1", unit(1, 0, 0, 0), text="How do I reset my password?"))
    [found] = await index.search(bucket, unit(1, 0, 0, 0), limit=3, threshold=0.9)

    assert (found.stored.key, found.stored.text) == ("k1", "How do I reset my password?")
    assert found.similarity == pytest.approx(1.0, abs=1e-5)
    assert found.stored.vector == pytest.approx(unit(1, 0, 0, 0), abs=1e-6)


async def test_search_sees_only_its_own_bucket(index: VectorIndex, bucket: str) -> None:
    await index.add(bucket, stored("k1", unit(1, 0, 0, 0)))
    assert await index.search(bucket + "-other", unit(1, 0, 0, 0), limit=3, threshold=0.0) == []


async def test_search_keeps_the_threshold_and_the_limit_most_similar_first(index: VectorIndex, bucket: str) -> None:
    await index.add(bucket, stored("near", unit(1, 0.1, 0, 0)))
    await index.add(bucket, stored("nearer", unit(1, 0.01, 0, 0)))
    await index.add(bucket, stored("far", unit(0, 1, 0, 0)))

    found = await index.search(bucket, unit(1, 0, 0, 0), limit=3, threshold=0.5)
    assert [c.stored.key for c in found] == ["nearer", "near"]
    assert [c.stored.key for c in await index.search(bucket, unit(1, 0, 0, 0), limit=1, threshold=0.5)] == ["nearer"]


async def test_an_expired_prompt_is_never_returned(index: VectorIndex, bucket: str) -> None:
    await index.add(bucket, stored("live", unit(1, 0, 0, 0)))
    await index.add(bucket, stored("gone", unit(1, 0.01, 0, 0), ttl=0.05))
    time.sleep(0.1)

    found = await index.search(bucket, unit(1, 0, 0, 0), limit=5, threshold=0.0)
    assert [c.stored.key for c in found] == ["live"]


async def test_adding_the_same_key_again_keeps_one_entry(index: VectorIndex, bucket: str) -> None:
    await index.add(bucket, stored("k1", unit(1, 0, 0, 0)))
    await index.add(bucket, stored("k1", unit(1, 0, 0, 0)))
    assert len(await index.search(bucket, unit(1, 0, 0, 0), limit=5, threshold=0.0)) == 1


async def test_a_bucket_keeps_only_its_newest_prompts(index: VectorIndex, bucket: str, held: Held) -> None:
    for n in range(BOUND + 2):
        await index.add(bucket, stored(f"k{n}", unit(1, n / 100, 0, 0)))
        assert await held(bucket) == min(n + 1, BOUND)

    found = await index.search(bucket, unit(1, 0, 0, 0), limit=10, threshold=0.0)
    assert sorted(c.stored.key for c in found) == [f"k{n}" for n in range(2, BOUND + 2)]


async def test_adding_a_prompt_again_makes_it_the_newest(index: VectorIndex, bucket: str, held: Held) -> None:
    for n in range(BOUND):
        await index.add(bucket, stored(f"k{n}", unit(1, n / 100, 0, 0)))
    await index.add(bucket, stored("k0", unit(1, 0, 0, 0)))  # the oldest, stored again
    await index.add(bucket, stored("new", unit(1, 0.5, 0, 0)))

    found = await index.search(bucket, unit(1, 0, 0, 0), limit=10, threshold=0.0)
    assert sorted(c.stored.key for c in found) == sorted(["k0", "k2", "k3", "new"])
    assert await held(bucket) <= BOUND


async def test_expired_prompts_are_dropped_when_their_bucket_is_next_written(
    index: VectorIndex, bucket: str, held: Held
) -> None:
    await index.add(bucket, stored("gone-1", unit(1, 0, 0, 0), ttl=0.05))
    await index.add(bucket, stored("gone-2", unit(1, 0.01, 0, 0), ttl=0.05))
    assert await held(bucket) == 2
    await asyncio.sleep(0.2)  # past their expiry; not a timed assertion
    await index.add(bucket, stored("live", unit(1, 0.02, 0, 0)))

    found = await index.search(bucket, unit(1, 0, 0, 0), limit=10, threshold=0.0)
    assert [c.stored.key for c in found] == ["live"]
    assert await held(bucket) == 1


async def test_an_expired_prompt_does_not_take_a_live_ones_place(index: VectorIndex, bucket: str, held: Held) -> None:
    await index.add(bucket, stored("gone", unit(1, 0, 0, 0), ttl=0.05))
    await asyncio.sleep(0.2)
    for n in range(BOUND):
        await index.add(bucket, stored(f"k{n}", unit(1, (n + 1) / 100, 0, 0)))

    found = await index.search(bucket, unit(1, 0, 0, 0), limit=10, threshold=0.0)
    assert sorted(c.stored.key for c in found) == [f"k{n}" for n in range(BOUND)]
    assert await held(bucket) == BOUND


async def test_prompts_added_in_the_same_clock_tick_are_still_trimmed_to_the_bound() -> None:
    """Qdrant orders a bucket by when each prompt was added: with a frozen clock they all tie.

    (The memory and Redis stores keep their order by position, not by time.)
    """
    frozen = time.time()
    made = QdrantIndex(
        AsyncQdrantClient(location=":memory:"),
        collection="frozen",
        timeout=5.0,
        max_per_bucket=3,
        local=True,
        clock=lambda: frozen,
    )
    try:
        for n in range(6):
            await made.add("b", stored(f"k{n}", unit(1, n / 100, 0, 0), now=frozen))
            found = await made.search("b", unit(1, n / 100, 0, 0), limit=10, threshold=0.0)
            assert f"k{n}" in [c.stored.key for c in found]  # the prompt just added is always kept
            assert await made.count() == min(n + 1, 3)
        await made.add("other", stored("o", unit(0, 1, 0, 0), now=frozen))  # another bucket is left alone
        assert await made.count() == 4
    finally:
        await made.aclose()
