"""One cache over any object store: S3, Google Cloud Storage, Azure Blob.

The three stores differ only in how a named blob is read, written and deleted, so
each implements the narrow `ObjectStore` transport (in `s3.py`, `gcs.py`,
`azure_blob.py`) and `ObjectCache` adds the cache's semantics once:

- names: `<prefix>entries/<key>` for entries, `<prefix>epochs/<namespace>` for
  the flush epoch of a namespace (a few bytes of ASCII);
- TTL: an expiry stored with the object (`envelope`), checked on read. Expired and
  flushed objects are not deleted by llmcache: give the bucket a lifecycle rule that
  deletes objects under the prefix some days after their last write;
- flush: `bump_epoch` rewrites the namespace's epoch object (read, add one, write).
  Two flushes racing may land on the same number; both flushes still take effect;
- leases: always granted. Object stores offer no cheap expiring lock, so identical
  requests from different pods are not coalesced (each pod still coalesces its own);
- unreadable objects (foreign, corrupt, from an unknown format) are misses, not
  errors: they say nothing about the store's health.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from llmcache_sidecar.backends import envelope
from llmcache_sidecar.backends.base import BackendError, BackendStats, ListingUnsupported
from llmcache_sidecar.entry import CachedResponse, EntryFormatError

logger = logging.getLogger(__name__)


class ObjectStore(Protocol):
    """Named blobs in one bucket or container. Raises only `BackendError`."""

    name: str

    async def read(self, name: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        ...

    async def write(self, name: str, data: bytes) -> None:
        """Create or replace the object, atomically for readers."""
        ...

    async def remove(self, name: str) -> bool:
        """Delete the object; True when it existed."""
        ...

    async def check(self) -> None:
        """Return when the bucket or container answers."""
        ...

    async def aclose(self) -> None: ...


class ObjectCache:
    """The `CacheBackend` contract on top of an `ObjectStore`."""

    self_bounded = False  # HTTP clients with retries inside: FailOpen adds the deadline

    def __init__(self, store: ObjectStore, *, prefix: str) -> None:
        self.store = store
        self.name = store.name
        self._entries = f"{prefix}entries/"
        self._epochs = f"{prefix}epochs/"

    def object_name(self, key: str) -> str:
        """Where the entry for `key` is stored."""
        return self._entries + key

    async def get(self, key: str) -> CachedResponse | None:
        data = await self.store.read(self._entries + key)
        if data is None:
            return None
        try:
            return envelope.unpack(data, time.time())
        except EntryFormatError as exc:
            logger.debug("%s: unreadable object treated as a miss: %s", self.name, exc)
            return None

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        if ttl <= 0:
            return
        await self.store.write(self._entries + key, envelope.pack(value, time.time() + ttl))

    async def delete(self, key: str) -> bool:
        return await self.store.remove(self._entries + key)

    async def get_epoch(self, namespace: str) -> int:
        data = await self.store.read(self._epochs + namespace)
        if data is None:
            return 0
        try:
            return int(data.decode("ascii"))
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            raise BackendError(f"epoch object of {namespace!r} is not a number") from exc

    async def bump_epoch(self, namespace: str) -> int:
        epoch = await self.get_epoch(namespace) + 1
        await self.store.write(self._epochs + namespace, str(epoch).encode("ascii"))
        return epoch

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        return True  # see the module docstring: no cross-pod coalescing here

    async def release_lease(self, key: str) -> None:
        return None

    async def keys(self, prefix: str, limit: int) -> list[str]:
        raise ListingUnsupported(f"listing the {self.name} bucket is not implemented: export from memory or Redis")

    async def stats(self) -> BackendStats:
        return BackendStats(entries=None, bytes=None)  # counting means listing the bucket

    async def ping(self) -> None:
        await self.store.check()

    async def aclose(self) -> None:
        await self.store.aclose()
