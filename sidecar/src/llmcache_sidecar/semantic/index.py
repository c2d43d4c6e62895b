"""Where prompt vectors are kept: the `VectorIndex` protocol and the in-memory index.

An index holds, per bucket (see `bucket`), the last user message of each stored
answer, its embedding and the exact cache key of that answer. `search` returns the
nearest few at or above a similarity; the matcher verifies them and then reads the
answer itself from the cache backend by its key, so an answer that expired or was
flushed there is never served from here.

The index keeps prompt text (the verifier compares words, not vectors). It is kept
per bucket, and a bucket is per tenant, so one API key never sees another's prompts.

`VectorIndexError` is what every index raises when it cannot answer; the matcher counts
it and the request goes on as a plain miss.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from llmcache_sidecar.semantic.embedder import Vector, cosine


class VectorIndexError(Exception):
    """A vector index could not answer (unreachable, timed out, unreadable data)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One prompt in the index."""

    key: str
    """Exact cache key of the stored answer."""
    text: str
    """The last user message as the caller sent it."""
    vector: Vector
    """float32 (see `embedder`): what a stored prompt costs in memory is mostly this and `text`."""
    expires_at: float


@dataclass(frozen=True, slots=True)
class Candidate:
    stored: Stored
    similarity: float


class VectorIndex(Protocol):
    name: str

    async def search(self, bucket: str, vector: Vector, *, limit: int, threshold: float) -> list[Candidate]:
        """At most `limit` live prompts of `bucket` with similarity >= `threshold`, most similar first."""
        ...

    async def add(self, bucket: str, stored: Stored) -> None:
        """Keep `stored` in `bucket` (replacing an entry with the same key), evicting the oldest past the bound."""
        ...

    async def count(self) -> int | None:
        """Prompts held, when that is cheap to know."""
        ...

    async def aclose(self) -> None: ...


def nearest(entries: list[Stored], vector: Vector, *, limit: int, threshold: float) -> list[Candidate]:
    """The brute-force search every bucket-local index uses: a few hundred dot products."""
    now = time.time()
    query = vector.tolist()  # once per search: cosine is fastest against a list of Python floats
    scored = (
        Candidate(s, similarity)
        for s in entries
        if s.expires_at > now and (similarity := cosine(s.vector, query)) >= threshold
    )
    return heapq.nlargest(limit, scored, key=lambda c: c.similarity)


class MemoryIndex:
    """This pod's index: at most `max_per_bucket` prompts in each of at most `max_buckets` buckets (LRU)."""

    name = "memory"

    def __init__(self, *, max_per_bucket: int, max_buckets: int) -> None:
        self.max_per_bucket = max_per_bucket
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, OrderedDict[str, Stored]] = OrderedDict()

    async def search(self, bucket: str, vector: Vector, *, limit: int, threshold: float) -> list[Candidate]:
        entries = self._buckets.get(bucket)
        if not entries:
            return []
        self._buckets.move_to_end(bucket)
        return nearest(list(entries.values()), vector, limit=limit, threshold=threshold)

    async def add(self, bucket: str, stored: Stored) -> None:
        entries = self._buckets.get(bucket)
        if entries is None:
            entries = self._buckets[bucket] = OrderedDict()
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(bucket)
        entries.pop(stored.key, None)
        entries[stored.key] = stored
        now = time.time()
        for key in [k for k, s in entries.items() if s.expires_at <= now]:
            del entries[key]
        while len(entries) > self.max_per_bucket:
            entries.popitem(last=False)

    async def count(self) -> int | None:
        return sum(len(entries) for entries in self._buckets.values())

    async def aclose(self) -> None:
        self._buckets.clear()
