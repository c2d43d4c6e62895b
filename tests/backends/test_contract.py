"""What every backend promises, checked against each one (the `backend` fixture).

Each test uses keys and namespaces of its own, so that the servers can be shared
by the whole session.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from llmcache_sidecar.backends import CacheBackend, ListingUnsupported
from llmcache_sidecar.entry import CachedResponse, Usage
from tests.backends.conftest import Case, put_raw


def new_key() -> str:
    return f"llmc:1:test-{uuid.uuid4().hex[:8]}:0:tenant:{uuid.uuid4().hex}"


def answer(body: bytes = b'{"choices": [{"message": {"content": "hi"}}]}', **extra: object) -> CachedResponse:
    return CachedResponse(
        status=200,
        headers=(("content-type", "application/json"), ("x-request-id", "req-1")),
        body=body,
        created_at=1_700_000_000.5,
        model="gpt-test",
        usage=Usage(input_tokens=12, output_tokens=34),
        **extra,  # type: ignore[arg-type]
    )


async def test_a_stored_answer_comes_back_unchanged(backend: CacheBackend) -> None:
    key = new_key()
    stream = answer(b"data: {}\n\ndata: [DONE]\n\n", is_stream=True, chunk_times=((9, 0.0), (25, 0.25)))
    await backend.set(key, stream, 60)
    assert await backend.get(key) == stream


async def test_a_key_never_stored_is_a_miss(backend: CacheBackend) -> None:
    assert await backend.get(new_key()) is None


async def test_a_value_set_with_a_ttl_is_gone_after_it(backend: CacheBackend) -> None:
    # Every backend keeps expiries to the millisecond (Redis PX, a float in the envelope or in
    # memory), so a sub-second TTL tests what a long one would, without the wait. Whether the
    # value is there before its end can only be seen by a read that starts and ends before it:
    # on a machine too busy for that, the same check runs again with a longer life.
    lasting = new_key()
    await backend.set(lasting, answer(), 60)
    ttl = 0.3
    while True:
        key, start = new_key(), time.monotonic()
        await backend.set(key, answer(), ttl)
        stored = time.monotonic()
        before_its_end = await backend.get(key)
        if time.monotonic() - start < ttl:
            break
        ttl *= 2
    assert before_its_end is not None
    await asyncio.sleep(max(0.0, stored + ttl + 0.05 - time.monotonic()))
    assert await backend.get(key) is None
    assert await backend.get(lasting) is not None


async def test_an_entry_past_its_freshness_is_kept_for_its_stale_window(backend: CacheBackend) -> None:
    """The ttl a backend is given (the entry's ttl + staleIfError) outlives the entry's own freshness;
    when that one runs out the entry goes (`test_a_value_set_with_a_ttl_is_gone_after_it`)."""
    key = new_key()
    stale = answer(ttl=1.0)  # created long ago: past its freshness from the start
    await backend.set(key, stale, 60)
    got = await backend.get(key)
    assert got == stale
    assert got is not None and got.staleness(time.time()) > 0


async def test_a_zero_ttl_stores_nothing(backend: CacheBackend) -> None:
    key = new_key()
    await backend.set(key, answer(), 0)
    assert await backend.get(key) is None


async def test_a_deleted_key_is_a_miss_and_deleting_again_says_so(backend: CacheBackend) -> None:
    key = new_key()
    await backend.set(key, answer(), 60)
    assert await backend.delete(key) is True
    assert await backend.get(key) is None
    assert await backend.delete(key) is False


async def test_a_later_set_replaces_the_earlier_answer(backend: CacheBackend) -> None:
    key = new_key()
    await backend.set(key, answer(b"first"), 60)
    await backend.set(key, answer(b"second"), 60)
    got = await backend.get(key)
    assert got is not None and got.body == b"second"


async def test_flush_moves_only_its_own_namespace_on(backend: CacheBackend) -> None:
    ours, theirs = f"ns-{uuid.uuid4().hex[:8]}", f"ns-{uuid.uuid4().hex[:8]}"
    assert await backend.get_epoch(ours) == 0
    before_theirs = await backend.get_epoch(theirs)
    assert await backend.bump_epoch(ours) == 1
    assert await backend.bump_epoch(ours) == 2
    assert await backend.get_epoch(ours) == 2
    assert await backend.get_epoch(theirs) == before_theirs


async def test_a_one_mebibyte_answer_round_trips(backend: CacheBackend) -> None:
    key = new_key()
    big = answer(os.urandom(2**20))  # incompressible: stored at full size
    await backend.set(key, big, 60)
    assert await backend.get(key) == big


async def test_a_compressible_answer_round_trips(backend: CacheBackend) -> None:
    key = new_key()
    text = answer(b'{"content": "' + b"the same words again " * 20_000 + b'"}')
    await backend.set(key, text, 60)
    assert await backend.get(key) == text


async def test_concurrent_writers_of_one_key_leave_one_whole_answer(backend: CacheBackend) -> None:
    key = new_key()
    bodies = [bytes([65 + i]) * (50_000 + i) for i in range(16)]
    await asyncio.gather(*(backend.set(key, answer(body), 60) for body in bodies))
    got = await backend.get(key)
    assert got is not None
    assert got.body in bodies


async def test_concurrent_readers_and_writers_never_see_half_an_answer(backend: CacheBackend) -> None:
    key = new_key()
    bodies = [bytes([97 + i]) * 200_000 for i in range(4)]

    async def write(i: int) -> None:
        await backend.set(key, answer(bodies[i % len(bodies)]), 60)

    async def read() -> CachedResponse | None:
        return await backend.get(key)

    results = await asyncio.gather(*(write(i) if i % 2 else read() for i in range(24)))
    for got in results:
        assert got is None or got.body in bodies


async def test_concurrent_lookups_of_different_keys_each_get_their_own_answer(backend: CacheBackend) -> None:
    keys = [new_key() for _ in range(40)]
    bodies = [f'{{"answer": {i}}}'.encode() * (1 + i * 50) for i in range(40)]
    await asyncio.gather(*(backend.set(k, answer(b), 60) for k, b in zip(keys, bodies, strict=True)))
    asked: list[str] = []
    for i, key in enumerate(keys):
        asked += [key, new_key()] if i % 4 == 0 else [key]  # misses among the hits
    # Ten at a time: enough to overlap on every backend (and to batch on Redis), few enough
    # for the single-threaded object-store emulators to answer within the timeout on a busy machine.
    limit = asyncio.Semaphore(10)

    async def look(key: str) -> CachedResponse | None:
        async with limit:
            return await backend.get(key)

    got = await asyncio.gather(*(look(k) for k in asked))
    wanted = dict(zip(keys, bodies, strict=True))
    assert [g.body if g else None for g in got] == [wanted.get(k) for k in asked]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not an entry at all",
        b"LLMC\x63\x00garbage",
        b"LLMX\x01" + b"\x7f" * 8 + b"LLMC\x01\x09\x00\x00\x00\x02{}",
    ],
    ids=["empty", "foreign", "future-format", "unknown-codec"],
)
async def test_bytes_that_are_not_an_entry_are_a_miss(backend: CacheBackend, case: Case, garbage: bytes) -> None:
    key = new_key()
    if case.name == "gcs" and not garbage:
        pytest.skip("gcp-storage-emulator drops the connection on a zero-length upload")
    if not await put_raw(backend, key, garbage):
        pytest.skip("this backend keeps objects, not bytes")
    assert await backend.get(key) is None


async def test_a_lease_is_exclusive_until_released_where_the_backend_is_shared(
    backend: CacheBackend, case: Case
) -> None:
    key = new_key()
    assert await backend.acquire_lease(key, 30) is True
    second = await backend.acquire_lease(key, 30)
    if case.name.startswith(("redis", "dual-redis")):
        assert second is False  # another pod would wait for the first one's answer
    else:
        assert second is True  # per-process or object-store backends grant every lease
    await backend.release_lease(key)
    assert await backend.acquire_lease(key, 30) is True
    await backend.release_lease(key)


async def test_stats_and_ping_answer(backend: CacheBackend) -> None:
    await backend.set(new_key(), answer(), 60)
    await backend.ping()
    stats = await backend.stats()
    assert stats.entries is None or stats.entries >= 1
    assert stats.bytes is None or stats.bytes > 0


@pytest.mark.outage
async def test_a_backend_that_goes_away_turns_into_misses_not_errors(backend: CacheBackend, case: Case) -> None:
    if case.outage is None:
        pytest.skip("an in-process backend cannot go away")
    stored, during = new_key(), new_key()
    await backend.set(stored, answer(), 60)
    with case.outage():
        assert await backend.get(during) is None
        await backend.set(during, answer(), 60)
        await backend.delete(stored)
        assert await backend.acquire_lease(new_key(), 30) is True
        await backend.release_lease(new_key())
        await backend.stats()
    assert case.errors, "the outage was not noticed"
    # Back again: after the breaker's cooldown, answers come from the backend once more.
    later = new_key()
    deadline = time.monotonic() + 30
    while True:
        await backend.set(later, answer(), 60)
        if await backend.get(later) is not None:
            break
        assert time.monotonic() < deadline, "the backend did not come back"
        await asyncio.sleep(0.2)


async def test_keys_lists_the_live_keys_of_a_prefix_or_says_it_cannot(backend: CacheBackend, case: Case) -> None:
    """What the admin port's export reads: every live key of one namespace, and nothing of another."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    ours = [f"llmc:1:{namespace}:e0:tenant:{uuid.uuid4().hex}" for _ in range(3)]
    theirs = f"llmc:1:{namespace}x:e0:tenant:{uuid.uuid4().hex}"
    expiring = f"llmc:1:{namespace}:e0:tenant:{uuid.uuid4().hex}"
    for key in [*ours, theirs]:
        await backend.set(key, answer(), 60)
    await backend.set(expiring, answer(), 0.2)
    await asyncio.sleep(0.4)
    try:
        listed = await backend.keys(f"llmc:1:{namespace}:", 1000)
    except ListingUnsupported:
        assert case.name.removeprefix("dual-").startswith(("disk", "s3", "gcs", "azure")), case.name
        return
    assert sorted(listed) == sorted(ours)
    assert len(await backend.keys(f"llmc:1:{namespace}:", 2)) == 2
