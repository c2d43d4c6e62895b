"""A stored answer, and the one binary format remote backends keep it in.

The memory backend keeps `CachedResponse` objects as they are: a hit there costs no
decoding. Remote backends (Redis, S3, disk, ...) store `encode(entry)` and read back
with `decode(data)`. The format starts with a magic and a version byte, so an entry
written by another release is rejected cleanly (`EntryFormatError`, counted as a miss)
instead of being served as garbage. Bodies are compressed when that makes them
noticeably smaller.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import orjson

MAGIC = b"LLMC"
FORMAT_VERSION = 1
_HEAD = struct.Struct("!4sBBI")  # magic, version, codec, length of the JSON metadata
_CODEC_PLAIN = 0
_CODEC_ZLIB = 1
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
        }
    )
    codec, body = _CODEC_PLAIN, entry.body
    if len(body) >= _COMPRESS_MIN_BYTES:
        packed = zlib.compress(body, 6)
        if len(packed) < len(body) * _COMPRESS_MIN_SAVING:
            codec, body = _CODEC_ZLIB, packed
    return b"".join((_HEAD.pack(MAGIC, FORMAT_VERSION, codec, len(meta)), meta, body))


def decode(data: bytes) -> CachedResponse:
    """Read back what `encode` wrote; raise `EntryFormatError` on anything else."""
    if len(data) < _HEAD.size:
        raise EntryFormatError("entry too short")
    magic, version, codec, meta_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise EntryFormatError("not an llmcache entry")
    if version != FORMAT_VERSION:
        raise EntryFormatError(f"entry format {version}, this release reads {FORMAT_VERSION}")
    start = _HEAD.size + meta_len
    try:
        meta = orjson.loads(data[_HEAD.size : start])
        body = data[start:]
        if codec == _CODEC_ZLIB:
            body = zlib.decompress(body)
        elif codec != _CODEC_PLAIN:
            raise EntryFormatError(f"unknown codec {codec}")
        return CachedResponse(
            status=meta["s"],
            headers=tuple((k, v) for k, v in meta["h"]),
            body=body,
            created_at=meta["t"],
            is_stream=meta["st"],
            model=meta["m"],
            usage=Usage(*meta["u"]),
            chunk_times=tuple((o, t) for o, t in meta["ct"]),
            elapsed=meta["el"],
        )
    except (orjson.JSONDecodeError, zlib.error, KeyError, TypeError, ValueError) as exc:
        raise EntryFormatError(f"corrupt entry: {exc}") from exc
