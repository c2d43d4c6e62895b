"""The iptables port: connections redirected from the app's outbound 443, for apps that ignore HTTPS_PROXY.

An init container with NET_ADMIN redirects the pod's outbound TCP 443 here, except the
sidecar's own traffic (matched by its UID), e.g.
`iptables -t nat -A OUTPUT -p tcp --dport 443 -m owner ! --uid-owner 65531 -j REDIRECT --to-ports 15001`.
Such a connection carries no host name. `SO_ORIGINAL_DST` gives the address it was going
to, and the server name of the TLS ClientHello (SNI), *peeked* so that it stays in the
socket for whoever does the handshake, says whether it is for a listed LLM host. A listed
host is intercepted exactly as after a CONNECT (the name checked as a CONNECT line's host is);
anything else (another name, no name, a name that is not a DNS name, not TLS) is tunnelled
to the original address untouched. Linux only (netfilter).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

from llmcache_sidecar.intercept import clienthello
from llmcache_sidecar.intercept.target import host_name

logger = logging.getLogger(__name__)

SO_ORIGINAL_DST: Final = 80
"""From linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h) has the same value."""
HELLO_TIMEOUT: Final = 10.0
"""Longest wait for a redirected client's ClientHello."""
_PEEK_GAPS: Final = (0.002, 0.1)  # first and longest pause between peeks at an incomplete ClientHello


def original_destination(sock: socket.socket) -> tuple[str, int] | None:
    """Where a redirected connection was going (conntrack's original tuple); None when unknown."""
    try:
        if sock.family == socket.AF_INET:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)  # struct sockaddr_in
            return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4])
        raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)  # struct sockaddr_in6
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), int.from_bytes(raw[2:4])
    except OSError:
        return None


async def peek_hello(sock: socket.socket) -> clienthello.Hello | None:
    """The ClientHello waiting in `sock`, left unread; None when the client does not speak TLS.

    Raises `TimeoutError`, or `ConnectionError` when the client closes first.
    """
    loop = asyncio.get_running_loop()
    gap, longest = _PEEK_GAPS
    async with asyncio.timeout(HELLO_TIMEOUT):
        while True:
            await _readable(loop, sock)
            data = sock.recv(clienthello.MAX_HELLO_BYTES, socket.MSG_PEEK)
            if not data:
                raise ConnectionResetError("the client closed before its ClientHello")
            try:
                hello = clienthello.parse(data)
            except clienthello.NotTLS:
                return None
            if hello is not None:
                return hello
            # The socket stays readable while peeked bytes are unread: wait for the rest by time.
            await asyncio.sleep(gap)
            gap = min(gap * 2, longest)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


class Dispatcher(Protocol):
    """What the listener needs from the transparent service (`service.Transparent`)."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the set-up of one connection as a task the service owns."""
        ...

    def provider_for(self, host: str) -> str | None:
        """The provider of an intercepted host; None: tunnel it."""
        ...

    async def intercept_socket(self, sock: socket.socket, host: str, port: int) -> bool:
        """Terminate TLS on `sock` for `host`; False when it was refused."""
        ...

    async def tunnel_socket(self, sock: socket.socket, destination: tuple[str, int]) -> bool:
        """Join `sock` to `destination` untouched; False when it was refused."""
        ...


class RedirectListener:
    """Accepts redirected connections and sends each to interception or to a tunnel."""

    def __init__(
        self,
        service: Dispatcher,
        host: str,
        port: int,
        *,
        destination: Callable[[socket.socket], tuple[str, int] | None] = original_destination,
    ) -> None:
        """`destination` finds where a connection was going: the kernel's record (tests replace it)."""
        self._service = service
        self._address = (host, port)
        self._destination = destination
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self._address
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._task = loop.create_task(self._accept(sock))
        logger.info("redirect port listening on %s:%d", host, self.port)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self._sock is not None:
            self._sock.close()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # out of file descriptors, for instance: breathe, then go on
                logger.warning("redirect port: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            self._service.spawn(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        adopted = False
        try:
            adopted = await self._dispatch(conn)
        finally:
            if not adopted:
                conn.close()

    async def _dispatch(self, conn: socket.socket) -> bool:
        """Hand `conn` on; False when it was refused (the caller closes it)."""
        destination = self._destination(conn)
        if destination is None or destination == conn.getsockname()[:2]:
            # Not redirected: a direct connection here would otherwise loop back to itself.
            logger.info("redirect port: a connection that iptables did not redirect was closed")
            return False
        try:
            hello = await peek_hello(conn)
        except (TimeoutError, ConnectionError) as exc:
            logger.debug("redirect port: no ClientHello from a client: %s", exc)
            return False
        # The SNI is read as strictly as a CONNECT line's host: a name that is not a DNS name
        # (`a/b.openai.azure.com`) is never intercepted, so it is tunnelled untouched.
        name = host_name(hello.server_name) if hello is not None and hello.server_name else None
        if name is not None and self._service.provider_for(name) is not None:
            return await self._service.intercept_socket(conn, name, destination[1])
        return await self._service.tunnel_socket(conn, destination)
