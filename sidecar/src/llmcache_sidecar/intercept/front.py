"""The data port in transparent mode: one listening socket, three kinds of client.

aiohttp's server does not route CONNECT, so `Front`, the protocol of the data port's
listening socket, reads the start of each new connection and decides who owns it: a
CONNECT goes to `Transparent.connect`, an absolute-form request (`POST http://host/...`)
to the transparent server, anything else (`/<provider>/...`) to the app's own server.
Front hands over the bytes it has read and steps out, so after its first request a
keep-alive connection costs nothing extra (bench/front.py measures it).
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from llmcache_sidecar.intercept.service import TRANSPARENT, Transparent
from llmcache_sidecar.intercept.target import parse_authority
from llmcache_sidecar.intercept.tunnel import refuse

HEAD_TIMEOUT: Final = 30.0
"""Longest time a new connection may take to send its request line (CONNECT: its whole head)."""
MAX_HEAD: Final = 16 * 1024


class Front(asyncio.Protocol):
    """The first protocol of every data-port connection: it decides who owns it.

    It reads only the method and the first byte of the request target: `CONNECT` goes to
    `Transparent.connect`, a target that does not start with `/` (absolute form) to the
    transparent server, everything else to the app's server, and the front steps out.
    """

    __slots__ = ("_app_server", "_buffer", "_service", "_timer", "_transport")

    def __init__(self, app_server: web.Server, service: Transparent) -> None:
        self._app_server = app_server
        self._service = service
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._too_slow)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        space = buffer.find(b" ", 0, 16)
        if (space < 0 and len(buffer) < 16) or space == len(buffer) - 1:
            self._buffer = buffer  # not enough to decide yet
            return
        if space < 0 or buffer[space + 1] in b"/*":
            self._give(self._app_server, buffer)  # origin form (or not HTTP: the app's server answers 400)
        elif buffer[:space] != b"CONNECT":
            self._give(self._service.server, buffer)  # absolute form: a plain-HTTP proxy request
        else:
            self._connect(buffer)

    def eof_received(self) -> bool:
        return False  # nothing decided yet: close

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _give(self, server: web.Server, data: bytes) -> None:
        assert self._transport is not None and self._timer is not None
        self._timer.cancel()
        handler = server()
        self._transport.set_protocol(handler)
        handler.connection_made(self._transport)
        handler.data_received(data)

    def _connect(self, buffer: bytes) -> None:
        assert self._transport is not None and self._timer is not None
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                refuse(self._transport, 431, "the CONNECT head is too large")
            else:
                self._buffer = buffer
            return
        self._timer.cancel()
        self._transport.pause_reading()
        line = buffer[: buffer.find(b"\r\n")].decode("latin-1").split(" ")
        target = parse_authority(line[1]) if len(line) == 3 and line[2].startswith("HTTP/1.") else None
        if target is None:
            refuse(self._transport, 400, "expected CONNECT host:port HTTP/1.1")
            return
        self._service.spawn(self._service.connect(self._transport, target, buffer[end + 4 :]))

    def _too_slow(self) -> None:
        if self._transport is not None:
            refuse(self._transport, 408, "no request in time")


class DataSite(web.TCPSite):
    """The data port with `Front` in front of the app's server (transparent mode only)."""

    # Our own slot, not aiohttp's private `_bound_port` (which only aiohttp >= 3.14 has).
    __slots__ = ("_listening_port",)

    @property
    def port(self) -> int:
        """The port it listens on: the bound one when it was asked for port 0."""
        return self._listening_port

    async def start(self) -> None:
        await web.BaseSite.start(self)
        app_server = self._runner.server
        assert app_server is not None and isinstance(self._runner, web.AppRunner)
        service = self._runner.app[TRANSPARENT]
        self._server = await asyncio.get_running_loop().create_server(
            lambda: Front(app_server, service),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._listening_port: int = self._server.sockets[0].getsockname()[1]
