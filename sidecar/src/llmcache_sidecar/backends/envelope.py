"""An entry with its expiry, for stores that keep no TTL of their own.

Object stores (S3, GCS, Azure Blob) and the disk backend have no per-object TTL that
is fine-grained enough (S3 lifecycle rules count in days), so the expiry travels
with the value and is checked on every read. The expiry is wall-clock time (Unix
seconds): the readers are other pods and later processes, which share no monotonic
clock. A clock skew between pods shifts an entry's life by that skew, no more.

Layout: magic `LLMX`, a version byte, the expiry as a big-endian double, then the
`entry.encode()` bytes, which carry their own format version and codec.
"""

from __future__ import annotations

import struct

from llmcache_sidecar import entry
from llmcache_sidecar.entry import CachedResponse, EntryFormatError

MAGIC = b"LLMX"
VERSION = 1
_HEAD = struct.Struct("!4sBd")
HEAD_SIZE = _HEAD.size


def pack(value: CachedResponse, expires_at: float) -> bytes:
    """The bytes to store for `value`, readable until `expires_at` (Unix seconds)."""
    return _HEAD.pack(MAGIC, VERSION, expires_at) + entry.encode(value)


def expiry(data: bytes) -> float:
    """The expiry in the header alone; raises `EntryFormatError` on foreign bytes."""
    if len(data) < _HEAD.size:
        raise EntryFormatError("stored object too short")
    magic, version, expires_at = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise EntryFormatError("not an llmcache object")
    if version != VERSION:
        raise EntryFormatError(f"object envelope {version}, this release reads {VERSION}")
    return float(expires_at)


def unpack(data: bytes, now: float) -> CachedResponse | None:
    """The entry, or None once expired; raises `EntryFormatError` on foreign bytes."""
    if expiry(data) <= now:
        return None
    return entry.decode(data[_HEAD.size :])
