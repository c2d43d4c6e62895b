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

Where connections come from: `front.DataSite` (the data port, which tells CONNECT and
absolute-form requests from reverse-proxy ones) and `redirect` (the iptables port). The
plumbing (tunnels, hand-over to aiohttp) is in `tunnel`; certificates in `certs`.

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
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from yarl import URL

from llmcache_sidecar import proxy
from llmcache_sidecar.config import TransparentSettings
from llmcache_sidecar.entry import Usage
from llmcache_sidecar.intercept.target import Target, provider_for
from llmcache_sidecar.intercept.tunnel import Holder, Pipe, link, refuse
from llmcache_sidecar.proxy import STATE, Route, Runtime, State
from llmcache_sidecar.wire.providers import KINDS, WireFormat

if TYPE_CHECKING:
    from llmcache_sidecar.intercept.certs import LeafCache
    from llmcache_sidecar.intercept.redirect import RedirectListener

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0
"""Longest wait for a tunnelled host to accept the connection."""
HANDSHAKE_TIMEOUT: Final = 10.0
PASSTHROUGH_TIMEOUT: Final = 3600.0
"""Total time limit of a forwarded plain-HTTP request to a host that is not intercepted."""

ESTABLISHED: Final = b"HTTP/1.1 200 Connection Established\r\n\r\n"

PASSTHROUGH: Final = WireFormat(
    name="passthrough",
    cacheable=re.compile(r"(?!)"),  # matches nothing: every request is relayed as it is
    credential_headers=(),
    credential_query=(),
    key_headers=(),
    usage=lambda body: Usage(),
    stream_complete=lambda events: False,
)


@dataclass(slots=True)
class ConnectionCounters:
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
        self.counters = ConnectionCounters()
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

    async def start(self, state: State) -> None:
        try:
            from llmcache_sidecar.intercept import certs, redirect  # cryptography is needed only here
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

    def adopt(self, transport: asyncio.BaseTransport, target: Target) -> asyncio.Protocol:
        """Take a decrypted connection to `target`: its protocol is a handler of the transparent server."""
        self.counters.intercepted += 1
        self.intercepted[transport] = target
        return self.server()

    def provider_for(self, host: str) -> str | None:
        """The provider of an intercepted host; None: tunnel it.

        A listed host that the CA's name constraints do not cover is tunnelled too: a client
        would refuse the leaf (a host added before the operator's CA rotation finished, or a
        cache switched back to base-URL mode whose pods still run).
        """
        assert self._state is not None
        provider = provider_for(self._state.runtime.settings.transparent.hosts, host)
        if provider is not None and not self.leaves.may_sign(host):
            return None
        return provider

    # --- CONNECT ----------------------------------------------------------------------------

    async def connect(self, transport: asyncio.Transport, target: Target, early: bytes) -> None:
        """Answer `CONNECT target` on `transport` (reading paused): intercept or tunnel."""
        self.counters.connects += 1
        try:
            await self._connect(transport, target, early)
        except BaseException:
            transport.abort()  # shutdown, or a bug: never leave the client waiting
            raise

    async def _connect(self, transport: asyncio.Transport, target: Target, early: bytes) -> None:
        if self.provider_for(target.host) is None:
            await self._tunnel_connect(transport, target, early)
            return
        if early:
            self.counters.refused += 1
            refuse(transport, 400, "send nothing before the 200 answer to CONNECT")
            return
        from llmcache_sidecar.intercept.certs import CertificateError

        try:
            context = await self.leaves.context_for(target.host)
        except CertificateError as exc:
            self.counters.refused += 1
            logger.error("cannot make a certificate for %s: %s", target.host, exc)
            refuse(transport, 502, "the interception CA cannot sign")
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
            refuse(transport, 502, f"cannot connect to {target.authority(0)}")
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
        from llmcache_sidecar.intercept.certs import CertificateError

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
            return Route(
                target.host, PASSTHROUGH, f"{scheme}://{target.authority(default)}", PASSTHROUGH_TIMEOUT, opaque=True
            )
        # A listed host is always called over verified TLS, even when the app spoke plain HTTP.
        port = target.port if target.port not in (80, 443) else 443
        upstream = f"https://{Target(target.host, port).authority(443)}"
        configured = rt.routes.get(provider)
        if configured is not None:
            return replace(configured, upstream=upstream)
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
    raw = request.raw_path
    transport = request.transport
    target = service.intercepted.get(transport) if transport is not None else None
    if target is not None:
        tail = raw.partition("?")[0][1:] if raw.startswith("/") else _raw_tail(raw)
        return await proxy.serve(request, service.route(rt, target, "https"), tail)
    if raw.startswith("/"):
        # Origin form on a connection that began with a proxy request: reverse-proxy mode.
        name = request.match_info["tail"].partition("/")[0]
        route = rt.routes.get(name)
        if route is None:
            return _error(404, f"no provider named {name!r} is configured")
        return await proxy.serve(request, route, proxy.route_tail(raw))
    url = URL(raw)
    if url.scheme not in ("http", "https") or not url.host:
        return _error(400, "expected an absolute http:// URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    return await proxy.serve(request, service.route(rt, Target(url.host.lower(), port), url.scheme), _raw_tail(raw))


def _raw_tail(absolute: str) -> str:
    """The path of an absolute-form target as sent (`http://host/a/b?q` -> `a/b`), never normalised."""
    after_authority = absolute.partition("://")[2].partition("/")[2]
    return after_authority.partition("?")[0].partition("#")[0]


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
