"""Stored entries are compressed when it pays, carry a format version, and an entry
this release cannot read is rejected cleanly, never served as garbage."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import orjson
import pytest

from llmcache_sidecar import entry
from llmcache_sidecar.backends import envelope
from llmcache_sidecar.entry import CachedResponse, EntryFormatError

TEXT = b'{"content": "' + b"a sentence that repeats " * 2000 + b'"}'


def answer(body: bytes) -> CachedResponse:
    return CachedResponse(status=200, headers=(("content-type", "application/json"),), body=body, created_at=1.0)


def codec_of(data: bytes) -> int:
    return data[5]


def test_a_compressible_body_is_stored_with_zstd_and_read_back() -> None:
    data = entry.encode(answer(TEXT))
    assert codec_of(data) == 2
    assert len(data) < len(TEXT) // 10
    assert entry.decode(data) == answer(TEXT)


def test_a_small_body_is_stored_as_it_is() -> None:
    data = entry.encode(answer(b'{"ok": true}'))
    assert codec_of(data) == 0


def test_without_zstandard_bodies_are_stored_with_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry, "HAVE_ZSTD", False)
    data = entry.encode(answer(TEXT))
    assert codec_of(data) == 1
    assert entry.decode(data) == answer(TEXT)


def test_entries_written_with_zlib_by_an_earlier_release_are_still_read() -> None:
    meta = orjson.dumps({"s": 200, "h": [["content-type", "application/json"]], "t": 1.0, "st": False,
                         "m": None, "u": [0, 0], "ct": []})  # fmt: skip
    old = struct.pack("!4sBBI", b"LLMC", 1, 1, len(meta)) + meta + zlib.compress(TEXT)
    assert entry.decode(old) == answer(TEXT)


def test_a_zstd_entry_without_zstandard_is_unreadable_not_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    data = entry.encode(answer(TEXT))
    monkeypatch.setattr(entry, "HAVE_ZSTD", False)
    with pytest.raises(EntryFormatError, match="zstd"):
        entry.decode(data)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d[:3], "too short"),
        (lambda d: b"XXXX" + d[4:], "not an llmcache entry"),
        (lambda d: d[:4] + bytes([9]) + d[5:], "entry format 9"),
        (lambda d: d[:5] + bytes([7]) + d[6:], "unknown codec 7"),
        (lambda d: d[:-40], "corrupt"),
    ],
    ids=["truncated-head", "foreign-magic", "future-version", "unknown-codec", "truncated-body"],
)
def test_damaged_entries_are_rejected_with_a_reason(mangle: Callable[[bytes], bytes], message: str) -> None:
    data = entry.encode(answer(TEXT))
    with pytest.raises(EntryFormatError, match=message):
        entry.decode(mangle(data))


def test_a_body_claiming_more_than_the_cap_is_rejected_before_it_is_inflated() -> None:
    import zstandard

    frame = zstandard.ZstdCompressor().compress(b"\0" * (entry._MAX_BODY_BYTES + 1))
    meta = orjson.dumps({"s": 200, "h": [], "t": 1.0, "st": False, "m": None, "u": [0, 0], "ct": []})
    data = struct.pack("!4sBBI", b"LLMC", 1, 2, len(meta)) + meta + frame
    with pytest.raises(EntryFormatError, match="larger"):
        entry.decode(data)


def test_an_envelope_keeps_its_entry_until_the_expiry() -> None:
    packed = envelope.pack(answer(b"x"), expires_at=1000.0)
    assert envelope.unpack(packed, now=999.0) == answer(b"x")
    assert envelope.unpack(packed, now=1000.0) is None
    with pytest.raises(EntryFormatError):
        envelope.unpack(b"LLMX\x02" + packed[5:], now=0.0)
