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


def test_an_entry_knows_when_it_went_stale() -> None:
    value = sample(ttl=60.0)
    assert entry.decode(entry.encode(value)) == value
    assert value.staleness(value.created_at + 59) < 0
    assert value.staleness(value.created_at + 90) == pytest.approx(30)


def test_a_format_1_entry_is_still_read_and_fresh_for_as_long_as_it_is_kept() -> None:
    meta = b'{"s":200,"h":[["content-type","application/json"]],"t":1.0,"st":false,"m":null,"u":[1,2],"ct":[]}'
    old = entry.MAGIC + bytes([1, 0]) + len(meta).to_bytes(4, "big") + meta + b'{"ok": true}'
    value = entry.decode(old)
    assert value.ttl is None and value.body == b'{"ok": true}'
    assert value.staleness(1e12) < 0


def test_entries_are_written_as_format_2_which_a_format_1_reader_refuses() -> None:
    # A release that reads only format 1 checks this byte: it never serves a stale entry as fresh.
    assert entry.encode(sample(ttl=5.0))[4] == 2
