"""The vector index on plain Redis: no modules, vectors compared in the sidecar.

Each bucket is one Redis list, newest first, trimmed to `max_per_bucket` on every
add (`LPUSH` + `LTRIM` + an expiry extended to the longest-lived prompt, in one round
trip), so a bucket never grows past its bound and disappears when its last prompt's
time is up; expired prompts inside a live bucket are skipped by searches. A search reads the
bucket (`LRANGE`, one round trip of at most `max_per_bucket` entries: 256 prompts of
all-MiniLM-L6-v2 are about 400 KB) and computes the similarities here, a few
milliseconds of arithmetic. That is the price of working on any Redis; Redis Stack's
vector search would move it to the server and is not used yet.

An entry is packed as: expiry (float64), length of a small JSON header, the header
(`{"k": cache key, "t": prompt text}`), then the vector as little-endian float32. Every redis-py
error becomes `VectorIndexError` here.
"""

from __future__ import annotations

import struct
import sys
import time
from array import array

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llmcache_sidecar.semantic.embedder import Vector
from llmcache_sidecar.semantic.index import Candidate, Stored, VectorIndexError, nearest

_HEAD = struct.Struct("<dI")
# The bucket lives as long as its longest-lived prompt: extend its expiry, never shorten it.
# (A script rather than PEXPIRE GT/NX, so that Redis before 7.0 works too.)
_EXTEND_TTL = """
local left = redis.call('PTTL', KEYS[1])
if left >= 0 and left < tonumber(ARGV[1]) or left == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return left
"""


class RedisIndex:
    name = "redis"

    def __init__(self, client: aioredis.Redis, *, max_per_bucket: int) -> None:
        self._client = client
        self.max_per_bucket = max_per_bucket

    @classmethod
    def from_url(cls, url: str, *, password: str | None, timeout: float, max_per_bucket: int) -> RedisIndex:
        client = aioredis.Redis.from_url(
            url, password=password, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0
        )
        return cls(client, max_per_bucket=max_per_bucket)

    async def search(self, bucket: str, vector: Vector, *, limit: int, threshold: float) -> list[Candidate]:
        try:
            raw = await self._client.lrange(bucket, 0, self.max_per_bucket - 1)
        except RedisError as exc:
            raise VectorIndexError(str(exc)) from exc
        entries: list[Stored] = []
        seen: set[str] = set()
        for item in raw:
            stored = unpack(item) if isinstance(item, bytes) else None
            if stored is not None and stored.key not in seen:
                seen.add(stored.key)
                entries.append(stored)
        return nearest(entries, vector, limit=limit, threshold=threshold)

    async def add(self, bucket: str, stored: Stored) -> None:
        ttl_ms = int((stored.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        name = bucket  # the Redis key itself: llmc:<format>:<namespace>:sem:<hash> (wire.keys)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.lpush(name, pack(stored))
                pipe.ltrim(name, 0, self.max_per_bucket - 1)
                pipe.eval(_EXTEND_TTL, 1, name, ttl_ms)
                await pipe.execute()
        except RedisError as exc:
            raise VectorIndexError(str(exc)) from exc

    async def count(self) -> int | None:
        return None  # counting would mean a SCAN of the whole database

    async def aclose(self) -> None:
        await self._client.aclose()


def pack(stored: Stored) -> bytes:
    header = orjson.dumps({"k": stored.key, "t": stored.text})
    vector = array("f", stored.vector)
    if sys.byteorder == "big":
        vector.byteswap()
    return _HEAD.pack(stored.expires_at, len(header)) + header + vector.tobytes()


def unpack(data: bytes) -> Stored | None:
    """An entry, or None for bytes this release cannot read (skipped, never served)."""
    try:
        expires_at, size = _HEAD.unpack_from(data)
        header = orjson.loads(data[_HEAD.size : _HEAD.size + size])
        vector = array("f", data[_HEAD.size + size :])
        if sys.byteorder == "big":
            vector.byteswap()
        return Stored(key=header["k"], text=header["t"], vector=vector, expires_at=expires_at)
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
