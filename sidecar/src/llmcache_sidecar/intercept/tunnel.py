"""The connection plumbing of transparent mode: tunnels, the hand-over of a decrypted stream, refusals.

`Pipe` joins two transports byte for byte (a tunnel is never decrypted). `Holder` keeps a
fresh TLS connection until the transparent aiohttp server takes it over. `refuse` answers
a proxy request with an error and closes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from llmcache_sidecar.intercept.target import Target

_PHRASES = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}


def refuse(transport: asyncio.Transport, status: int, reason: str) -> None:
    if transport.is_closing():
        return
    body = f"llmcache: {reason}\n".encode()
    transport.write(
        f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    transport.close()


class Adopter(Protocol):
    """What a `Holder` needs from the transparent service (`service.Transparent`)."""

    def adopt(self, transport: asyncio.BaseTransport, target: Target) -> asyncio.Protocol:
        """Count and remember the decrypted connection; the protocol that serves it from now on."""
        ...


class Holder(asyncio.Protocol):
    """Holds a fresh TLS connection until it is handed to the transparent aiohttp server.

    `loop.start_tls` never calls `connection_made` and may deliver data before it returns,
    so that data is kept and passed on by `hand_over`. `connect_accepted_socket(ssl=...)`
    does call `connection_made`, after the handshake: the hand-over then happens there.
    """

    def __init__(self, service: Adopter, target: Target) -> None:
        self._service = service
        self._target = target
        self._data: list[bytes] = []
        self._eof = False
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.hand_over(transport)

    def data_received(self, data: bytes) -> None:
        self._data.append(data)

    def eof_received(self) -> bool:
        self._eof = True
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = True

    def hand_over(self, transport: asyncio.BaseTransport) -> None:
        if self._lost:
            return
        handler = self._service.adopt(transport, self._target)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        for chunk in self._data:
            handler.data_received(chunk)
        if self._eof:
            handler.eof_received()


class Pipe(asyncio.Protocol):
    """One end of a tunnel: what arrives is written to the other end, with back-pressure both ways."""

    def __init__(self, *, paused: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Pipe | None = None
        self._paused = paused
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._paused:  # until `link`: nothing may reach a peer that is not there yet
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.peer.transport is not None
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self._eof = True
        assert self.peer is not None and self.peer.transport is not None
        other = self.peer.transport
        if self.peer._eof or other.is_closing():
            other.close()  # both halves are done
            return False
        if other.can_write_eof():
            other.write_eof()
            return True  # keep our write half open for the other side's remaining answer
        other.close()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        peer = self.peer.transport if self.peer is not None else None
        if peer is not None and not peer.is_closing():
            if exc is None:
                peer.close()  # after what is buffered
            else:
                peer.abort()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


def link(a: Pipe, b: Pipe) -> None:
    a.peer, b.peer = b, a
