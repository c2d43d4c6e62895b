"""Single-flight: identical requests in flight at once share one upstream call.

Every miss runs its upstream call as a `Flight`: a task owned by the app that reads
the provider's answer into a buffer and publishes each chunk as it arrives. The
request that started it (the leader) and any identical request that arrives while it
runs (followers) all read the same flight from its first chunk, live, each through its
own `Reader`. The leader is only the first reader, so a leader whose client hangs up
does not cut the answer for the followers, and the answer is still stored.

A follower only takes a flight's answer when it is a success: when the head says
otherwise (an error status), the follower makes its own call, so that nobody gets an
error that was not theirs. A flight stays visible to late arrivals until its answer
has been stored, which closes the window between "answer done" and "entry written".

The recording is bounded (`limit`, the setting `maxResponseBytes`). An answer that
outgrows it stops being recorded: it will not be stored, no new follower joins it, and
each chunk is dropped as soon as every reader has taken it. The upstream is then read
only as fast as the slowest reader takes it (at most `limit` bytes held), and not at all
once nobody reads: memory stays bounded whatever the answer's size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from llmcache_sidecar.wire.render import AS_STORED, Shape


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: tuple[tuple[str, str], ...]
    is_stream: bool
    from_cache: bool = False
    """True when another pod's stored answer fills this flight (cross-pod coalescing)."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class FlightFailed(Exception):
    """The upstream answer broke off after its head (a cut stream, a timeout)."""


class Flight:
    """One upstream answer, readable by any number of requests while it arrives."""

    __slots__ = (
        "_first",
        "_head",
        "_held",
        "_loop",
        "_readers",
        "_room",
        "_wake",
        "chunks",
        "done",
        "error",
        "limit",
        "recording",
        "shape",
        "size",
        "times",
    )

    def __init__(self, limit: int | None = None, shape: Shape = AS_STORED) -> None:
        self._loop = asyncio.get_running_loop()
        self._head: asyncio.Future[Head] = self._loop.create_future()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self.chunks: list[bytes] = []
        """The chunks held: the whole answer while it is recorded, else those some reader still needs."""
        self.times: list[float] = []
        """Loop time at which each chunk arrived (for paced replay of streams), while recorded."""
        self.limit = limit
        self.recording = True
        """False once the answer outgrew `limit`: it will not be stored."""
        self.size = 0
        """Bytes published so far."""
        self.done = False
        self.error: BaseException | None = None
        self._first = 0  # the number of the chunk at chunks[0]
        self._held = 0  # bytes in chunks
        self._readers: list[Reader] = []
        self.shape = shape
        """The delivery the leader asked for, which is what the provider sends (`render.same_delivery`)."""

    # -- writer side (the upstream task) --------------------------------------------
    def set_head(self, head: Head, *, length: int | None = None) -> None:
        """The answer's status and headers; `length` (its Content-Length) may say now that it is too large."""
        self._head.set_result(head)
        if length is not None and self.limit is not None and length > self.limit:
            self._stop_recording()

    def publish(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        self._held += len(chunk)
        if self.recording:
            self.times.append(self._loop.time())
            if self.limit is not None and self.size > self.limit:
                self._stop_recording()
        self._notify()

    async def room(self) -> bool:
        """Wait, when the answer is not recorded, until the readers hold at most `limit` bytes.

        False when nobody reads it any more: the writer stops fetching it.
        """
        while not self.recording:
            if not self._readers:
                return False
            assert self.limit is not None
            if self._held <= self.limit:
                return True
            self._room.clear()
            await self._room.wait()
        return True

    def finish(self, error: BaseException | None = None) -> None:
        """The answer is complete (error None) or broke off (error set)."""
        self.done = True
        self.error = error
        if not self._head.done():
            self._head.set_exception(error or FlightFailed("no answer"))
            self._head.exception()  # mark retrieved: a flight nobody reads must not warn
        self._notify()

    def _stop_recording(self) -> None:
        self.recording = False
        self.times.clear()
        self._drop_taken()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _drop_taken(self) -> None:
        """Past the limit: forget the chunks every reader has taken, and let the writer go on."""
        if self.recording:
            return
        upto = min((r.next for r in self._readers), default=self._first + len(self.chunks))
        if upto > self._first:
            dropped = self.chunks[: upto - self._first]
            del self.chunks[: upto - self._first]
            self._held -= sum(len(c) for c in dropped)
            self._first = upto
        self._room.set()

    # -- reader side ----------------------------------------------------------------
    def attach(self) -> Reader:
        """A reader from the first chunk; every request that will read this flight holds one from the start.

        Raises `FlightFailed` when the first chunks are gone already (an answer past its
        limit drops what its readers took): the caller makes its own call.
        """
        if self._first:
            raise FlightFailed("the answer is too large to share from its start")
        reader = Reader(self)
        self._readers.append(reader)
        return reader

    async def head(self) -> Head:
        """The status and headers, once the provider sent them (raises if it never did)."""
        return await asyncio.shield(self._head)

    async def settled(self) -> None:
        """Until the answer is complete, or known not to be recorded (past its limit)."""
        while not self.done and self.recording:
            await self._wake.wait()

    async def body(self) -> bytes:
        """The whole answer, once complete (only while it is recorded)."""
        await self.settled()
        if self.error is not None:
            raise FlightFailed(str(self.error)) from self.error
        if not self.recording:
            raise FlightFailed("the answer is past the limit: it is streamed, never held whole")
        if self._head.result().is_stream:  # a stream's chunks stay apart: their times are stored with them
            return b"".join(self.chunks)
        if len(self.chunks) > 1:
            self.chunks[:] = [b"".join(self.chunks)]  # joined once: every later join is free
        return self.chunks[0] if self.chunks else b""


class Reader:
    """One request's place in a flight; `close` it when done, so that chunks it took can go."""

    __slots__ = ("_flight", "next")

    def __init__(self, flight: Flight) -> None:
        self._flight = flight
        self.next = 0
        """The number of the next chunk this reader takes."""

    async def chunks(self) -> AsyncIterator[bytes]:
        """Every chunk from the first, live; raises `FlightFailed` if the answer broke off."""
        flight = self._flight
        while True:
            while self.next < flight._first + len(flight.chunks):
                chunk = flight.chunks[self.next - flight._first]
                self.next += 1
                flight._drop_taken()
                yield chunk
            if flight.done:
                if flight.error is not None:
                    raise FlightFailed(str(flight.error)) from flight.error
                return
            await flight._wake.wait()

    def close(self) -> None:
        flight = self._flight
        if self in flight._readers:
            flight._readers.remove(self)
            flight._drop_taken()


class Coalescer:
    """The flights in progress in this process, by cache key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: str) -> tuple[Flight, Reader] | None:
        """The flight already fetching `key`, and this caller's reader of it; None when there is none to join.

        An answer past its limit takes no new readers: it will not be stored, and what its
        readers took is gone.
        """
        flight = self._flights.get(key)
        if flight is None or not flight.recording:
            return None
        return flight, flight.attach()

    def lead(self, key: str, limit: int | None, shape: Shape = AS_STORED) -> tuple[Flight, Reader]:
        """Register a new flight for `key`, with its leader's reader; call `land` when it is stored or dropped."""
        flight = Flight(limit, shape)
        self._flights[key] = flight
        return flight, flight.attach()

    def land(self, key: str, flight: Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
