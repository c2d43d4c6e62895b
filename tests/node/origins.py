"""The tier's fake origins, served over TLS from the node itself (never from the internet).

- `api.openai.com` resolves (through the node's DNS) to the node IP, where the fake
  provider (tests/fakes) answers on :443 with a certificate for that name. It counts every
  call that reaches it, so a test can tell a hit (no call) from a miss.
- `origin.llmcache-e2e.test` resolves to a second address on the node's bridge, where a
  plain HTTPS server answers `origin-ok`: a host transparent mode must not intercept.

Both certificates come from a provider CA made for the session; the tier's sidecar image
is the product's image plus that CA (the real provider's certificate would chain to a public
root instead). Runs in a thread with its own event loop, for the whole session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.fakes.provider import FAKE, FakeProvider, make_fake_provider
from tests.node import pki
from tests.node.layout import NODE_IP

PROVIDER_HOST = "api.openai.com"
ORIGIN_HOST = "origin.llmcache-e2e.test"
ORIGIN_IP = "10.201.0.2"
ORIGIN_BODY = "origin-ok"
START_TIMEOUT_S = 15.0
HOSTS = {PROVIDER_HOST: NODE_IP, ORIGIN_HOST: ORIGIN_IP}
"""Name -> address, for the node's DNS (the node puts both addresses on its bridge)."""


@dataclass(frozen=True)
class Origins:
    provider: FakeProvider
    ca_cert: Path


def make_certificates(directory: Path) -> tuple[pki.Issued, pki.Issued, pki.Issued]:
    ca = pki.make_ca(directory, "provider-ca", "llmcache e2e provider CA")
    provider = pki.issue(ca, directory, "provider", PROVIDER_HOST, hosts=[PROVIDER_HOST])
    origin = pki.issue(ca, directory, "origin", ORIGIN_HOST, hosts=[ORIGIN_HOST])
    return ca, provider, origin


def _context(issued: pki.Issued) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    return context


async def _origin(_: web.Request) -> web.Response:
    return web.Response(text=ORIGIN_BODY)


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[Origins]:
    """Serve both origins until the block ends. The node's bridge must carry both addresses."""
    ca, provider_cert, origin_cert = make_certificates(directory)
    fake = FakeProvider(keep_last=1000)
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    started = threading.Event()
    failure: list[BaseException] = []

    async def start() -> None:
        origin_app = web.Application()
        origin_app.router.add_get("/", _origin)
        for app, host, cert in (
            (make_fake_provider(fake), NODE_IP, provider_cert),
            (origin_app, ORIGIN_IP, origin_cert),
        ):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, 443, ssl_context=_context(cert)).start()
            runners.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        for runner in runners:
            loop.run_until_complete(runner.cleanup())
        # Keep-alive connections from the sidecars are closed by cleanup; let their transports
        # finish closing before the loop goes, or they are reported unclosed at exit.
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, name="fake-origins", daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT_S) or failure:
        raise RuntimeError(f"the fake origins did not start: {failure}")
    try:
        yield Origins(provider=fake, ca_cert=ca.cert)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)


__all__ = ["FAKE", "HOSTS", "ORIGIN_BODY", "ORIGIN_HOST", "ORIGIN_IP", "PROVIDER_HOST", "Origins", "serving"]
