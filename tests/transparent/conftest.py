"""Fixtures for transparent mode: test CAs, TLS origins, and a sidecar serving its data port as a proxy.

What is faked, and why: api.openai.com and friends cannot be reached from here, so the
fake provider serves TLS on 127.0.0.1 with a certificate from `public_ca` (standing in for
the web PKI), and the sidecar's upstream connector resolves those names to it and trusts
`public_ca`; this override lives only in the sidecar's connector. The apps' side is real:
official SDKs and plain clients, speaking to the sidecar through `HTTPS_PROXY` exactly as
in a pod, trusting `intercept_ca` (the operator's per-namespace CA).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from llmcache_sidecar import config
from llmcache_sidecar.intercept.front import DataSite
from llmcache_sidecar.intercept.service import TRANSPARENT, Transparent
from llmcache_sidecar.proxy.runtime import STATE, State
from llmcache_sidecar.server.app import make_app
from tests.fakes.provider import FAKE, FakeProvider, make_fake_provider

PROVIDER_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com", "*.openai.azure.com")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: needs root and iptables; builds network namespaces (test_netns.py)")


@dataclass(frozen=True)
class Pki:
    public_ca: trustme.CA
    """Signs the origins' own certificates: the stand-in for the public web PKI."""
    intercept_ca: trustme.CA
    """The CA the sidecar signs interception certificates with (the operator's, per namespace)."""
    ca_cert_file: Path
    ca_key_file: Path
    bundle_file: Path
    """What the operator mounts into app containers: the public roots plus the interception CA."""
    public_file: Path

    def client_context(self, *, trust_intercept: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.public_ca.configure_trust(ctx)
        if trust_intercept:
            self.intercept_ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    public_ca, intercept_ca = trustme.CA(), trustme.CA(organization_name="llmcache test namespace CA")
    intercept_ca.cert_pem.write_to_path(str(root / "ca.crt"))
    intercept_ca.private_key_pem.write_to_path(str(root / "ca.key"))
    public_ca.cert_pem.write_to_path(str(root / "public.crt"))
    (root / "bundle.crt").write_bytes(public_ca.cert_pem.bytes() + intercept_ca.cert_pem.bytes())
    return Pki(public_ca, intercept_ca, root / "ca.crt", root / "ca.key", root / "bundle.crt", root / "public.crt")


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


class StaticResolver(AbstractResolver):
    """Resolves the given names to 127.0.0.1 and a test port; nothing else resolves."""

    def __init__(self, ports: Mapping[str, int]) -> None:
        self._ports = ports

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self._ports.get(host)
        if target is None:
            raise OSError(f"test resolver: {host} is not known")
        return [
            {"hostname": host, "host": "127.0.0.1", "port": target, "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        pass


@dataclass
class TlsUpstream:
    port: int
    fake: FakeProvider


ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def upstream_cert(request: pytest.FixtureRequest, pki: Pki) -> ssl.SSLContext:
    """The certificate the fake provider presents: a good one, or (indirect parametrization)
    one from a CA the sidecar does not trust, or one for another name."""
    kind = getattr(request, "param", "good")
    if kind == "untrusted-ca":
        return server_context(trustme.CA(), *PROVIDER_HOSTS)
    if kind == "wrong-name":
        return server_context(pki.public_ca, "api.not-openai.example")
    assert kind == "good", kind
    return server_context(pki.public_ca, *PROVIDER_HOSTS)


@pytest.fixture
async def tls_upstream(aiohttp_server: ServerFactory, upstream_cert: ssl.SSLContext) -> TlsUpstream:
    """The fake provider, over TLS, standing in for all the provider hosts."""
    server = await aiohttp_server(make_fake_provider(), ssl=upstream_cert)
    assert server.port is not None
    return TlsUpstream(server.port, server.app[FAKE])


@dataclass
class Proxy:
    url: str
    app: web.Application

    @property
    def state(self) -> State:
        return self.app[STATE]

    @property
    def service(self) -> Transparent:
        return self.app[TRANSPARENT]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


ProxyFactory = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def make_proxy(pki: Pki, tls_upstream: TlsUpstream) -> AsyncIterator[ProxyFactory]:
    """Start sidecars in transparent mode, served by `DataSite` as `cli.serve` does."""
    runners: list[web.AppRunner] = []

    async def start(*, resolve: Mapping[str, int] | None = None, **overrides: Any) -> Proxy:
        """`resolve`: upstream names -> local TLS ports (default: every provider host -> `tls_upstream`)."""
        data: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "transparent": {"enabled": True, "caCertFile": str(pki.ca_cert_file), "caKeyFile": str(pki.ca_key_file)},
        }
        data.update(overrides)
        settings = config.parse(config.Settings, data)
        names = [h for h in PROVIDER_HOSTS if not h.startswith("*")] + ["myres.openai.azure.com"]
        trust = pki.client_context(trust_intercept=False)

        def connector() -> aiohttp.BaseConnector:
            ports = resolve if resolve is not None else dict.fromkeys(names, tls_upstream.port)
            return aiohttp.TCPConnector(resolver=StaticResolver(ports), ssl=trust)

        app = make_app(settings, upstream_connector=connector)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        runners.append(runner)
        site = DataSite(runner, "127.0.0.1", 0)
        await site.start()
        return Proxy(f"http://127.0.0.1:{site.port}", app)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def proxy(make_proxy: ProxyFactory) -> Proxy:
    return await make_proxy()


@dataclass
class Origin:
    """A TLS server that is not an LLM host: its traffic must be tunnelled, never decrypted."""

    port: int
    cert_der: bytes


@pytest.fixture
async def origin(aiohttp_server: ServerFactory, pki: Pki) -> Origin:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from the origin")

    app = web.Application()
    app.router.add_get("/", hello)
    leaf = pki.public_ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    server = await aiohttp_server(app, ssl=ctx)
    assert server.port is not None
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    return Origin(server.port, der)
