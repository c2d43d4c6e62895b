"""A stored answer, and the one binary format remote backends keep it in.

The memory backend keeps `CachedResponse` objects as they are: a hit there costs no
decoding. Remote backends (Redis, S3, disk, ...) store `encode(entry)` and read back
with `decode(data)`. The format starts with a magic and a version byte, so an entry
written by another release is rejected cleanly (`EntryFormatError`, counted as a miss)
instead of being served as garbage. Bodies are compressed when that makes them
noticeably smaller.

Format 2 adds the entry's freshness lifetime (`ttl`): a backend may keep an entry
longer than it is fresh (`staleIfError`), and only the entry knows where fresh ends.
Format 1 entries are still read (fresh for as long as they are kept, which was their
TTL); a release that reads only format 1 refuses format 2, so it can never serve a
stale entry as a fresh one during a rolling upgrade.

The codec byte says how the body is compressed: zstd when the optional `zstandard`
package is installed (`llmcache-sidecar[zstd]`, part of every remote backend's extra),
zlib otherwise. Every release reads every codec it knows; a sidecar without
`zstandard` treats a zstd entry as unreadable, which is a miss, never garbage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import orjson

try:
    import zstandard

    HAVE_ZSTD = True
except ImportError:  # the optional extra is not installed: zlib it is
    HAVE_ZSTD = False

MAGIC = b"LLMC"
FORMAT_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
_HEAD = struct.Struct("!4sBBI")  # magic, version, codec, length of the JSON metadata
_CODEC_PLAIN = 0
_CODEC_ZLIB = 1
_CODEC_ZSTD = 2
_ZSTD_LEVEL = 3
# A decompressed body is never larger than what the sidecar accepts from upstream; the
# cap guards a hit against a hostile or corrupt frame that claims gigabytes.
_MAX_BODY_BYTES = 512 * 2**20
# Compress only when it pays: small bodies are not worth the CPU on every hit.
_COMPRESS_MIN_BYTES = 1024
_COMPRESS_MIN_SAVING = 0.9


class EntryFormatError(ValueError):
    """Stored bytes are not an entry this release can read."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts read from the answer's `usage` once, when it is stored."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """One upstream answer as it will be replayed.

    For a stream, `body` holds the raw Server-Sent Events bytes exactly as the
    provider sent them, and `chunk_times` the end offset of each chunk in `body`
    with its arrival time in seconds after the first byte; a paced replay uses
    them, a fast replay writes `body` in one go.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    created_at: float
    is_stream: bool = False
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    chunk_times: tuple[tuple[int, float], ...] = ()
    elapsed: float = 0.0
    """Seconds the provider took to give the whole answer: what a hit saves in time."""
    request: tuple[tuple[str, str], ...] = ()
    """Recorded entries only (`recording: record`): each part of the request that makes the key,
    as a short hash, so that a replay miss can say what differs from the nearest recorded request."""
    ttl: float | None = None
    """Seconds after `created_at` during which the entry is fresh. Past it the entry is
    stale: a backend still holds it for `staleIfError`, and it is served only when the
    provider fails or the caller accepts it (`max-stale`). None (format 1): fresh for as
    long as a backend keeps it."""

    def staleness(self, now: float) -> float:
        """Seconds past the end of freshness at `now` (zero or less while fresh)."""
        if self.ttl is None:
            return float("-inf")
        return now - self.created_at - self.ttl

    @property
    def size(self) -> int:
        """Approximate bytes this entry holds, for memory bounds and stats."""
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 128


def encode(entry: CachedResponse) -> bytes:
    """Serialise an entry for a remote backend (the only codec there is)."""
    meta = orjson.dumps(
        {
            "s": entry.status,
            "h": entry.headers,
            "t": entry.created_at,
            "st": entry.is_stream,
            "m": entry.model,
            "u": (entry.usage.input_tokens, entry.usage.output_tokens),
            "ct": entry.chunk_times,
            "el": entry.elapsed,
            "ttl": entry.ttl,
            **({"rq": entry.request} if entry.request else {}),
        }
    )
    codec, body = _CODEC_PLAIN, entry.body
    if len(body) >= _COMPRESS_MIN_BYTES:
        packed_codec, packed = _compress(body)
        if len(packed) < len(body) * _COMPRESS_MIN_SAVING:
            codec, body = packed_codec, packed
    return b"".join((_HEAD.pack(MAGIC, FORMAT_VERSION, codec, len(meta)), meta, body))


def decode(data: bytes) -> CachedResponse:
    """Read back what `encode` wrote; raise `EntryFormatError` on anything else."""
    if len(data) < _HEAD.size:
        raise EntryFormatError("entry too short")
    magic, version, codec, meta_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise EntryFormatError("not an llmcache entry")
    if version not in READABLE_VERSIONS:
        raise EntryFormatError(f"entry format {version}, this release reads {sorted(READABLE_VERSIONS)}")
    start = _HEAD.size + meta_len
    try:
        meta = orjson.loads(data[_HEAD.size : start])
        body = _decompress(codec, data[start:])
        return CachedResponse(
            status=meta["s"],
            headers=tuple((k, v) for k, v in meta["h"]),
            body=body,
            created_at=meta["t"],
            is_stream=meta["st"],
            model=meta["m"],
            usage=Usage(*meta["u"]),
            chunk_times=tuple((o, t) for o, t in meta["ct"]),
            elapsed=meta.get("el", 0.0),
            ttl=meta.get("ttl") if version >= 2 else None,
            request=tuple((n, h) for n, h in meta.get("rq", ())),
        )
    except EntryFormatError:
        raise
    except (orjson.JSONDecodeError, zlib.error, KeyError, TypeError, ValueError) as exc:
        raise EntryFormatError(f"corrupt entry: {exc}") from exc


def _compress(body: bytes) -> tuple[int, bytes]:
    if HAVE_ZSTD:
        # A compressor per call: they are cheap at level 3 and not safe to share
        # between threads (the disk backend encodes off the event loop).
        return _CODEC_ZSTD, zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(body)
    return _CODEC_ZLIB, zlib.compress(body, 6)


def _decompress(codec: int, body: bytes) -> bytes:
    if codec == _CODEC_PLAIN:
        return body
    if codec == _CODEC_ZLIB:
        inflater = zlib.decompressobj()
        out = inflater.decompress(body, _MAX_BODY_BYTES)
        if inflater.unconsumed_tail:
            raise EntryFormatError("body larger than any entry this release stores")
        return out
    if codec == _CODEC_ZSTD:
        if not HAVE_ZSTD:
            raise EntryFormatError("zstd-compressed entry; install llmcache-sidecar[zstd] to read it")
        try:
            # The frame's own size claim is checked first: with one present,
            # max_output_size alone does not stop a large allocation.
            if zstandard.frame_content_size(body) > _MAX_BODY_BYTES:
                raise EntryFormatError("body larger than any entry this release stores")
            out = zstandard.ZstdDecompressor().decompress(body, max_output_size=_MAX_BODY_BYTES)
        except zstandard.ZstdError as exc:
            raise EntryFormatError(f"corrupt zstd body: {exc}") from exc
        return bytes(out)
    raise EntryFormatError(f"unknown codec {codec}")
