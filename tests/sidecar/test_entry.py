"""The stored format: versioned, compact, and refused cleanly when foreign."""

from __future__ import annotations

import pytest

from llmcache_sidecar import entry
from llmcache_sidecar.entry import CachedResponse, EntryFormatError, Usage


def sample(body: bytes = b'{"ok": true}', **over: object) -> CachedResponse:
    args: dict[str, object] = {
        "status": 200,
        "headers": (("Content-Type", "application/json"), ("x-request-id", "r1")),
        "body": body,
        "created_at": 1700000000.5,
        "model": "gpt-4o-mini",
        "usage": Usage(12, 34),
    }
    args.update(over)
    return CachedResponse(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        sample(),
        sample(body=b"data: x\n\n" * 1000, is_stream=True, chunk_times=((9, 0.0), (18, 0.05))),
        sample(body=bytes(range(256)) * 10, model=None),
    ],
    ids=["json", "stream", "binary"],
)
def test_an_entry_reads_back_exactly(value: CachedResponse) -> None:
    assert entry.decode(entry.encode(value)) == value


def test_large_repetitive_bodies_are_compressed() -> None:
    value = sample(body=b'{"text": "' + b"lorem ipsum " * 2000 + b'"}')
    assert len(entry.encode(value)) < len(value.body) / 5


def test_small_bodies_are_stored_as_they_are() -> None:
    value = sample()
    assert value.body in entry.encode(value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"GARBAGE-GARBAGE-GARBAGE", "not an llmcache entry"),
        (entry.MAGIC + bytes([99, 0]) + b"\0\0\0\0", "entry format 99"),
        (entry.encode(sample())[:-20] + b"!" * 5, "corrupt entry"),
    ],
)
def test_foreign_or_damaged_bytes_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(EntryFormatError, match=message):
        entry.decode(data)
