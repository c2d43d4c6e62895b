"""The memory and disk backends stay within their byte bounds, evicting the least
recently used entries first; the disk backend keeps its entries and its order across
a restart and never shows a reader half a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from llmcache_sidecar.backends import envelope
from llmcache_sidecar.backends.disk import DiskCache
from llmcache_sidecar.backends.memory import MemoryCache
from llmcache_sidecar.entry import CachedResponse

KIB = 1024


def body_of(size: int) -> CachedResponse:
    # Random bytes: compression must not make the sizes in these tests meaningless.
    return CachedResponse(status=200, headers=(), body=os.urandom(size), created_at=0.0)


async def test_memory_never_holds_more_bytes_than_its_bound() -> None:
    cache = MemoryCache(max_bytes=64 * KIB, max_entries=1000)
    for i in range(50):
        await cache.set(f"k{i}", body_of(4 * KIB), 60)
        stats = await cache.stats()
        assert stats.bytes is not None and stats.bytes <= 64 * KIB
    assert await cache.get("k0") is None
    assert await cache.get("k49") is not None


async def test_memory_evicts_the_least_recently_read_entry_first() -> None:
    cache = MemoryCache(max_bytes=3 * 5 * KIB, max_entries=1000)
    for name in ("a", "b", "c"):
        await cache.set(name, body_of(4 * KIB), 60)
    assert await cache.get("a") is not None  # a is now the most recently used
    await cache.set("d", body_of(4 * KIB), 60)
    assert await cache.get("b") is None
    assert await cache.get("a") is not None


async def test_memory_drops_an_entry_larger_than_the_whole_bound() -> None:
    cache = MemoryCache(max_bytes=8 * KIB, max_entries=10)
    await cache.set("big", body_of(16 * KIB), 60)
    assert await cache.get("big") is None


async def test_disk_never_holds_more_bytes_than_its_bound(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=100 * KIB)
    for i in range(40):
        await cache.set(f"k{i}", body_of(8 * KIB), 60)
        stats = await cache.stats()
        assert stats.bytes is not None and stats.bytes <= 100 * KIB
    on_disk = sum(p.stat().st_size for p in (tmp_path / "entries").rglob("*") if p.is_file())
    assert on_disk <= 100 * KIB
    assert await cache.get("k0") is None
    assert await cache.get("k39") is not None
    await cache.aclose()


async def test_disk_evicts_the_least_recently_read_entry_first_even_after_a_restart(tmp_path: Path) -> None:
    entry_size = len(envelope.pack(body_of(8 * KIB), 0))
    first = DiskCache(tmp_path, max_bytes=3 * entry_size)
    for name in ("a", "b", "c"):
        await first.set(name, body_of(8 * KIB), 60)
        await asyncio.sleep(0.01)  # distinct modification times
    assert await first.get("a") is not None
    await first.aclose()

    second = DiskCache(tmp_path, max_bytes=3 * entry_size)  # a new process on the same volume
    stats = await second.stats()
    assert stats.entries == 3
    await second.set("d", body_of(8 * KIB), 60)
    assert await second.get("b") is None
    assert await second.get("a") is not None
    assert await second.get("c") is not None
    await second.aclose()


async def test_disk_keeps_entries_and_flushes_across_a_restart(tmp_path: Path) -> None:
    first = DiskCache(tmp_path, max_bytes=10 * 2**20)
    value = body_of(2 * KIB)
    await first.set("kept", value, 60)
    assert await first.bump_epoch("team-a") == 1
    await first.aclose()
    second = DiskCache(tmp_path, max_bytes=10 * 2**20)
    assert await second.get("kept") == value
    assert await second.get_epoch("team-a") == 1
    await second.aclose()


async def test_disk_readers_in_another_process_never_see_half_a_file(tmp_path: Path) -> None:
    writer = DiskCache(tmp_path, max_bytes=50 * 2**20)
    reader = DiskCache(tmp_path, max_bytes=50 * 2**20)  # its own index, as another process has
    bodies = [bytes([65 + i]) * 300 * KIB for i in range(4)]

    async def write_all() -> None:
        for round_ in range(10):
            await writer.set("shared", CachedResponse(200, (), bodies[round_ % 4], 0.0), 60)

    async def read_all() -> list[bytes | None]:
        seen: list[bytes | None] = []
        for _ in range(40):
            got = await reader.get("shared")
            seen.append(None if got is None else got.body)
            await asyncio.sleep(0)
        return seen

    _, seen = await asyncio.gather(write_all(), read_all())
    assert all(body is None or body in bodies for body in seen)
    await writer.aclose()
    await reader.aclose()


async def test_disk_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=10 * 2**20)
    await asyncio.gather(*(cache.set("same", body_of(64 * KIB), 60) for _ in range(8)))
    assert list((tmp_path / "tmp").iterdir()) == []
    await cache.aclose()


async def test_disk_drops_an_entry_larger_than_the_whole_bound(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=8 * KIB)
    await cache.set("big", body_of(16 * KIB), 60)
    assert await cache.get("big") is None
    assert (await cache.stats()).bytes == 0
    await cache.aclose()
