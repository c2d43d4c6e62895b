"""A listener an LLMCache's author could point a backend at: it records what arrives and answers a marker.

It plays the attacker of issue 15 (finding 2): a TCP server on a free loopback port that
keeps every byte it receives and answers each read with `reply`, whatever the protocol.
Nothing in it speaks Redis or HTTP properly, on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

MARKER = "attacker-controlled-reply-7f3a"


@dataclass
class Listener:
    port: int
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def listening(reply: bytes = f"-ERR {MARKER}\r\n".encode()) -> AsyncIterator[Listener]:
    """A `Listener` on 127.0.0.1, closed on exit."""
    found = Listener(port=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections += 1
        try:
            while data := await reader.read(65536):
                found.received += data
                writer.write(reply)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()
