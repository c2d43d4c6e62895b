"""Transparent mode: the data port as an HTTP(S) forward proxy that intercepts TLS only for LLM hosts.

An app started with `HTTPS_PROXY=http://127.0.0.1:8787` opens `CONNECT api.openai.com:443`.
For a host listed under `transparent.hosts` the sidecar answers 200, terminates TLS with a
leaf certificate for that name (`certs.LeafCache`), and hands the decrypted connection to
an aiohttp server whose one handler maps the host to a `Route` and calls `proxy.serve`:
the data path of reverse-proxy mode, so caching is the same (and an entry is shared with
reverse-proxy mode when its upstream is that host). The sidecar's own call goes to
`https://<host>` over its verified `ClientSession`; a certificate that does not verify
ends in a 502, never in an unverified call. Any other CONNECT becomes a byte-for-byte
tunnel, never decrypted. Plain-HTTP proxy requests (absolute form, `POST http://host/...`)
to a listed host are served the same way (and go upstream over https); others are
forwarded as they are.

aiohttp's server does not route CONNECT, so `Front`, the protocol of the data port's
listening socket, reads the start of each new connection. A CONNECT it handles itself.
Anything else is handed, with the bytes already read, to an aiohttp server protocol (the
app's own for `/<provider>/...` requests, the transparent one for absolute-form ones), which
then owns the connection: after its first request a keep-alive connection costs nothing
extra. `DataSite` listens with it; `redirect` adds the iptables port.

Limit: a client must wait for `200 Connection Established` before it starts TLS (all
common clients do); one that sends its ClientHello early to an intercepted host gets a 400.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from yarl import URL

from llmcache_sidecar import proxy
from llmcache_sidecar.config import TransparentSettings
from llmcache_sidecar.entry import Usage
from llmcache_sidecar.providers import KINDS, ProviderKind
from llmcache_sidecar.runtime import STATE, Route, Runtime, State

if TYPE_CHECKING:
    from llmcache_sidecar.certs import LeafCache
    from llmcache_sidecar.redirect import RedirectListener

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0
"""Longest wait for a tunnelled host to accept the connection."""
HANDSHAKE_TIMEOUT: Final = 10.0
HEAD_TIMEOUT: Final = 30.0
"""Longest time a new connection may take to send its request line (CONNECT: its whole head)."""
MAX_HEAD: Final = 16 * 1024
PASSTHROUGH_TIMEOUT: Final = 3600.0
"""Total time limit of a forwarded plain-HTTP request to a host that is not intercepted."""

ESTABLISHED: Final = b"HTTP/1.1 200 Connection Established\r\n\r\n"
_HOST_RE: Final = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_IPV6_RE: Final = re.compile(r"^\[([0-9a-f:.]+)\]$")

PASSTHROUGH: Final = ProviderKind(
    name="passthrough",
    cacheable=re.compile(r"(?!)"),  # matches nothing: every request is relayed as it is
    credential_headers=(),
    credential_query=(),
    key_headers=(),
    usage=lambda body: Usage(),
    stream_complete=lambda events: False,
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a client wants to go: a host name (lower case) or an IP address, and a port."""

    host: str
    port: int

    def authority(self, default_port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default_port else f"{host}:{self.port}"


def parse_authority(value: str) -> Target | None:
    """`host:port` of a CONNECT request line; None when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    host = host.lower().rstrip(".")
    if m := _IPV6_RE.match(host):
        host = m.group(1)
    elif not _HOST_RE.match(host):
        return None
    return Target(host, int(port))


def provider_for(hosts: Mapping[str, str], host: str) -> str | None:
    """The provider that `transparent.hosts` gives `host`; `*.` stands for exactly one label."""
    name = hosts.get(host)
    if name is None and "." in host:
        name = hosts.get("*." + host.split(".", 1)[1])
    return name


@dataclass(slots=True)
class Counters:
    connects: int = 0
    intercepted: int = 0
    tunnelled: int = 0
    redirected: int = 0
    handshake_failures: int = 0
    refused: int = 0


class Transparent:
    """What transparent mode adds to one sidecar; built by `install`, started with the app.

    It owns the leaf certificates, the aiohttp server of intercepted and absolute-form
    connections (a second application sharing the data port's `State`), the tunnels, the
    tasks that set connections up, and the optional iptables listener.
    """

    def __init__(self, settings: TransparentSettings, listen_host: str) -> None:
        self.settings = settings
        self.listen_host = listen_host
        self.counters = Counters()
        self.intercepted: weakref.WeakKeyDictionary[asyncio.BaseTransport, Target] = weakref.WeakKeyDictionary()
        """The target of each decrypted connection, keyed by its TLS transport."""
        self._leaves: LeafCache | None = None
        self._runner: web.AppRunner | None = None
        self._tunnels: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redirect: RedirectListener | None = None
        self._state: State | None = None

    @property
    def server(self) -> web.Server:
        assert self._runner is not None and self._runner.server is not None, "transparent mode is not started"
        return self._runner.server

    @property
    def leaves(self) -> LeafCache:
        assert self._leaves is not None, "transparent mode is not started"
        return self._leaves

    @property
    def redirect_port(self) -> int | None:
        return self._redirect.port if self._redirect is not None else None

    async def start(self, state: State) -> None:
        try:
            from llmcache_sidecar import certs, redirect  # cryptography is needed only here
        except ImportError as exc:
            raise RuntimeError(
                f"transparent mode needs the cryptography package ({exc}): pip install 'llmcache-sidecar[transparent]'"
            ) from exc

        assert self.settings.ca_cert_file and self.settings.ca_key_file
        if not _is_loopback(self.listen_host):
            logger.warning(
                "transparent mode on %s: anyone who reaches this address can tunnel through the pod; "
                "keep the data port on 127.0.0.1",
                self.listen_host,
            )
        self._state = state
        self._leaves = certs.LeafCache(
            self.settings.ca_cert_file, self.settings.ca_key_file, validity=self.settings.leaf_validity
        )
        app = web.Application()
        app[STATE] = state
        app[TRANSPARENT] = self
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        if self.settings.iptables_port is not None:
            self._redirect = redirect.RedirectListener(self, self.listen_host, self.settings.iptables_port)
            await self._redirect.start()
        logger.info(
            "transparent mode: intercepting %s; redirect port %s",
            ", ".join(sorted(self.settings.hosts)) or "no host",
            self.settings.iptables_port or "off",
        )

    async def aclose(self) -> None:
        if self._redirect is not None:
            await self._redirect.aclose()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        for transport in list(self._tunnels):
            transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("a transparent-mode connection failed", exc_info=exc)

    def provider_for(self, host: str) -> str | None:
        assert self._state is not None
        return provider_for(self._state.runtime.settings.transparent.hosts, host)

    # --- CONNECT ----------------------------------------------------------------------------

    async def connect(self, transport: asyncio.Transport, target: Target, early: bytes) -> None:
        """Answer `CONNECT target` on `transport` (reading paused): intercept or tunnel."""
        self.counters.connects += 1
        if self.provider_for(target.host) is None:
            await self._tunnel_connect(transport, target, early)
            return
        if early:
            self.counters.refused += 1
            _refuse(transport, 400, "send nothing before the 200 answer to CONNECT")
            return
        from llmcache_sidecar.certs import CertificateError

        try:
            context = await self.leaves.context_for(target.host)
        except CertificateError as exc:
            self.counters.refused += 1
            logger.error("cannot make a certificate for %s: %s", target.host, exc)
            _refuse(transport, 502, "the interception CA cannot sign")
            return
        if transport.is_closing():
            return
        transport.write(ESTABLISHED)
        holder = Holder(self, target)
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, holder, context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:  # start_tls has closed the transport
            self.counters.handshake_failures += 1
            logger.info("TLS handshake for %s failed (does the client trust the CA?): %s", target.host, exc)
            return
        if tls is not None:
            holder.hand_over(tls)

    async def _tunnel_connect(self, transport: asyncio.Transport, target: Target, early: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                far, far_end = await loop.create_connection(lambda: Pipe(paused=True), target.host, target.port)
        except (OSError, TimeoutError) as exc:
            self.counters.refused += 1
            logger.info("cannot tunnel to %s:%d: %s", target.host, target.port, exc)
            _refuse(transport, 502, f"cannot connect to {target.authority(0)}")
            return
        if transport.is_closing():  # the client left meanwhile
            far.close()
            return
        near_end = Pipe()
        transport.set_protocol(near_end)
        near_end.connection_made(transport)
        link(near_end, far_end)
        transport.write(ESTABLISHED)
        if early:
            far.write(early)
        self.track_tunnel(transport, far)
        far.resume_reading()
        transport.resume_reading()

    # --- redirected sockets (the iptables port) ------------------------------------------------

    async def intercept_socket(self, sock: socket.socket, host: str, port: int) -> bool:
        """Terminate TLS on a redirected socket whose ClientHello (still unread) names `host`."""
        from llmcache_sidecar.certs import CertificateError

        self.counters.redirected += 1
        try:
            context = await self.leaves.context_for(host)
        except CertificateError as exc:
            logger.error("cannot make a certificate for %s: %s", host, exc)
            return False
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: Holder(self, Target(host, port)), sock, ssl=context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.counters.handshake_failures += 1
            logger.info("TLS handshake for %s failed (does the client trust the CA?): %s", host, exc)
            return False
        return True

    async def tunnel_socket(self, sock: socket.socket, destination: tuple[str, int]) -> bool:
        """Join a redirected socket to its original destination, untouched."""
        loop = asyncio.get_running_loop()
        self.counters.redirected += 1
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                far, far_end = await loop.create_connection(lambda: Pipe(paused=True), *destination)
        except (OSError, TimeoutError) as exc:
            logger.info("cannot tunnel to %s:%d: %s", destination[0], destination[1], exc)
            return False

        def near_end() -> Pipe:
            pipe = Pipe()
            link(pipe, far_end)
            return pipe

        try:
            near, _ = await loop.connect_accepted_socket(near_end, sock)
        except OSError:
            far.close()
            raise
        self.track_tunnel(near, far)
        far.resume_reading()
        return True

    def track_tunnel(self, *transports: asyncio.Transport) -> None:
        self.counters.tunnelled += 1
        self._tunnels.update(transports)

    def route(self, rt: Runtime, target: Target, scheme: str) -> Route:
        """The route of a request to `target`: a provider's when the host is listed, else a relay."""
        provider = provider_for(rt.settings.transparent.hosts, target.host)
        if provider is None:
            default = 443 if scheme == "https" else 80
            return Route(target.host, PASSTHROUGH, f"{scheme}://{target.authority(default)}", PASSTHROUGH_TIMEOUT)
        # A listed host is always called over verified TLS, even when the app spoke plain HTTP.
        port = target.port if target.port not in (80, 443) else 443
        upstream = f"https://{Target(target.host, port).authority(443)}"
        configured = rt.routes.get(provider)
        if configured is not None:
            return Route(configured.name, configured.kind, upstream, configured.timeout)
        return Route(provider, KINDS[provider], upstream, 600.0)


TRANSPARENT = web.AppKey("llmcache_transparent", Transparent)


def install(app: web.Application) -> Transparent:
    """Add transparent mode to the data app (before it starts); `DataSite` then serves it."""
    state = app[STATE]
    settings = state.runtime.settings
    service = Transparent(settings.transparent, settings.listen.rpartition(":")[0].strip("[]"))
    app[TRANSPARENT] = service

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await service.start(app[STATE])
        yield
        await service.aclose()

    app.cleanup_ctx.append(lifecycle)
    return service


async def handle(request: web.Request) -> web.StreamResponse:
    """The one handler of intercepted and absolute-form connections."""
    service = request.app[TRANSPARENT]
    rt = request.app[STATE].runtime
    tail = request.match_info["tail"]
    transport = request.transport
    target = service.intercepted.get(transport) if transport is not None else None
    if target is not None:
        return await proxy.serve(request, service.route(rt, target, "https"), tail)
    if request.raw_path.startswith("/"):
        # Origin form on a connection that began with a proxy request: reverse-proxy mode.
        name, _, path = tail.partition("/")
        route = rt.routes.get(name)
        if route is None:
            return _error(404, f"no provider named {name!r} is configured")
        return await proxy.serve(request, route, path)
    url = URL(request.raw_path)
    if url.scheme not in ("http", "https") or not url.host:
        return _error(400, "expected an absolute http:// URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    return await proxy.serve(request, service.route(rt, Target(url.host.lower(), port), url.scheme), tail)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": f"llmcache: {message}", "type": "llmcache_error", "code": "bad_proxy_request"}},
        status=status,
    )


def _refuse(transport: asyncio.Transport, status: int, reason: str) -> None:
    if transport.is_closing():
        return
    body = f"llmcache: {reason}\n".encode()
    phrase = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}
    transport.write(
        f"HTTP/1.1 {status} {phrase.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    transport.close()


# --- protocols ------------------------------------------------------------------------------


class Holder(asyncio.Protocol):
    """Holds a fresh TLS connection until it is handed to the transparent aiohttp server.

    `loop.start_tls` never calls `connection_made` and may deliver data before it returns,
    so that data is kept and passed on by `hand_over`. `connect_accepted_socket(ssl=...)`
    does call `connection_made`, after the handshake: the hand-over then happens there.
    """

    def __init__(self, service: Transparent, target: Target) -> None:
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
        self._service.counters.intercepted += 1
        self._service.intercepted[transport] = self._target
        handler = self._service.server()
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
                _refuse(self._transport, 431, "the CONNECT head is too large")
            else:
                self._buffer = buffer
            return
        self._timer.cancel()
        self._transport.pause_reading()
        line = buffer[: buffer.find(b"\r\n")].decode("latin-1").split(" ")
        target = parse_authority(line[1]) if len(line) == 3 and line[2].startswith("HTTP/1.") else None
        if target is None:
            _refuse(self._transport, 400, "expected CONNECT host:port HTTP/1.1")
            return
        self._service.spawn(self._service.connect(self._transport, target, buffer[end + 4 :]))

    def _too_slow(self) -> None:
        if self._transport is not None:
            _refuse(self._transport, 408, "no request in time")


class DataSite(web.TCPSite):
    """The data port with `Front` in front of the app's server (transparent mode only)."""

    __slots__ = ()

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
        self._bound_port = self._server.sockets[0].getsockname()[1]
