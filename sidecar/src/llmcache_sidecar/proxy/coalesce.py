"""Single-flight: identical requests in flight at once share one upstream call.

Every miss runs its upstream call as a `Flight`: a task owned by the app that reads
the provider's answer into a buffer and publishes each chunk as it arrives. The
request that started it (the leader) and any identical request that arrives while it
runs (followers) all read the same flight from its first chunk, live. The leader is
only the first reader, so a leader whose client hangs up does not cut the answer for
the followers, and the answer is still stored.

A follower only takes a flight's answer when it is a success: when the head says
otherwise (an error status), the follower makes its own call, so that nobody gets an
error that was not theirs. A flight stays visible to late arrivals until its answer
has been stored, which closes the window between "answer done" and "entry written".
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

    __slots__ = ("_head", "_loop", "_wake", "chunks", "done", "error", "followers", "shape", "times")

    def __init__(self, shape: Shape = AS_STORED) -> None:
        self._loop = asyncio.get_running_loop()
        self._head: asyncio.Future[Head] = self._loop.create_future()
        self._wake = asyncio.Event()
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        """Loop time at which each chunk arrived (for paced replay of streams)."""
        self.done = False
        self.error: BaseException | None = None
        self.followers = 0
        self.shape = shape
        """The delivery the leader asked for, which is what the provider sends (`render.same_delivery`)."""

    # -- writer side (the upstream task) --------------------------------------------
    def set_head(self, head: Head) -> None:
        self._head.set_result(head)

    def publish(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.times.append(self._loop.time())
        self._notify()

    def finish(self, error: BaseException | None = None) -> None:
        """The answer is complete (error None) or broke off (error set)."""
        self.done = True
        self.error = error
        if not self._head.done():
            self._head.set_exception(error or FlightFailed("no answer"))
            self._head.exception()  # mark retrieved: a flight nobody reads must not warn
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    # -- reader side ----------------------------------------------------------------
    async def head(self) -> Head:
        """The status and headers, once the provider sent them (raises if it never did)."""
        return await asyncio.shield(self._head)

    async def read(self) -> AsyncIterator[bytes]:
        """Every chunk from the first, live; raises `FlightFailed` if the answer broke off."""
        index = 0
        while True:
            while index < len(self.chunks):
                yield self.chunks[index]
                index += 1
            if self.done:
                if self.error is not None:
                    raise FlightFailed(str(self.error)) from self.error
                return
            await self._wake.wait()

    async def body(self) -> bytes:
        """The whole answer, once complete."""
        while not self.done:
            await self._wake.wait()
        if self.error is not None:
            raise FlightFailed(str(self.error)) from self.error
        return b"".join(self.chunks)


class Coalescer:
    """The flights in progress in this process, by cache key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: str) -> Flight | None:
        """The flight already fetching `key`, with this caller counted as a follower."""
        flight = self._flights.get(key)
        if flight is not None:
            flight.followers += 1
        return flight

    def lead(self, key: str, shape: Shape = AS_STORED) -> Flight:
        """Register a new flight for `key`; call `land` when it is stored or dropped."""
        flight = Flight(shape)
        self._flights[key] = flight
        return flight

    def land(self, key: str, flight: Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
