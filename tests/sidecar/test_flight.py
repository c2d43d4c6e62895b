"""A flight past its limit: no longer recorded, chunks let go once every reader has them (finding 7)."""

from __future__ import annotations

import asyncio

import pytest

from llmcache_sidecar.proxy.coalesce import Coalescer, Flight, FlightFailed, Head

HEAD = Head(200, (("content-type", "application/json"),), is_stream=False)


async def test_within_its_limit_a_flight_keeps_the_whole_answer() -> None:
    flight = Flight(limit=10)
    flight.set_head(HEAD)
    for chunk in (b"12345", b"67890"):
        flight.publish(chunk)
    flight.finish()
    assert flight.recording
    assert await flight.body() == b"1234567890"


async def test_past_its_limit_a_flight_holds_only_what_a_reader_has_not_taken() -> None:
    flight = Flight(limit=10)
    slow, fast = flight.attach(), flight.attach()
    flight.set_head(HEAD)
    for chunk in (b"aaaaaa", b"bbbbbb", b"cccccc"):
        flight.publish(chunk)
    assert not flight.recording
    assert flight.times == []  # nothing of it will be stored

    fast_chunks = fast.chunks()
    assert [await anext(fast_chunks) for _ in range(3)] == [b"aaaaaa", b"bbbbbb", b"cccccc"]
    assert flight.chunks == [b"aaaaaa", b"bbbbbb", b"cccccc"]  # the slow reader has taken none yet
    room = asyncio.create_task(flight.room())
    await asyncio.sleep(0)
    assert not room.done()  # 18 bytes held, more than the limit: the writer waits

    slow_chunks = slow.chunks()
    assert await anext(slow_chunks) == b"aaaaaa"
    assert await anext(slow_chunks) == b"bbbbbb"
    assert flight.chunks == [b"cccccc"]
    assert await asyncio.wait_for(room, 1) is True
    with pytest.raises(FlightFailed):
        flight.attach()  # the start is gone: a late caller makes its own call
    slow.close()
    fast.close()
    assert await flight.room() is False  # nobody reads any more: the writer stops


async def test_a_content_length_past_the_limit_stops_the_recording_at_once() -> None:
    flight = Flight(limit=10)
    flight.set_head(HEAD, length=11)
    assert not flight.recording
    with pytest.raises(FlightFailed):
        await flight.body()


async def test_no_one_joins_a_flight_past_its_limit() -> None:
    coalescer = Coalescer()
    flight, reader = coalescer.lead("k", 4)
    assert coalescer.join("k") is not None
    flight.publish(b"12345")
    assert coalescer.join("k") is None
    reader.close()
