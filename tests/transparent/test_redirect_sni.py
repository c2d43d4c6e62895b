"""The SNI of a redirected connection (iptables mode) is read as strictly as a CONNECT host (finding 12).

A redirected connection names its host only in the TLS ClientHello. `a/b.openai.azure.com`
is not a DNS name, yet it matched `*.openai.azure.com` and was intercepted, with a Target
whose host `a/b.openai.azure.com` makes the upstream URL `https://a/b.openai.azure.com`.

What stands in for the kernel: `SO_ORIGINAL_DST` exists only for connections that
iptables redirected, so the listener is given where each connection "was going" (the
origin below); tests/transparent/test_netns.py covers the kernel part for real. The
listener, the transparent service, the ClientHellos (Python's ssl) and the TLS are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import pytest

from llmcache_sidecar.intercept.redirect import RedirectListener
from llmcache_sidecar.intercept.target import host_name, parse_authority
from tests.transparent.conftest import Origin, Proxy


@pytest.fixture
async def redirect_port(proxy: Proxy, origin: Origin) -> AsyncIterator[int]:
    listener = RedirectListener(proxy.service, "127.0.0.1", 0, destination=lambda _: ("127.0.0.1", origin.port))
    await listener.start()
    assert listener.port is not None
    yield listener.port
    await listener.aclose()


async def certificate_seen(port: int, server_name: str) -> bytes:
    """The certificate a client gets on the redirect port when its ClientHello names `server_name`."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_name), 10
    )
    der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
    return der


@pytest.mark.parametrize("server_name", ["a/b.openai.azure.com", "a b.openai.azure.com", "a:b.openai.azure.com"])
async def test_a_server_name_that_is_not_a_dns_name_is_tunnelled_not_intercepted(
    proxy: Proxy, origin: Origin, redirect_port: int, server_name: str
) -> None:
    assert await certificate_seen(redirect_port, server_name) == origin.cert_der  # the origin's own: untouched
    assert proxy.service.leaves.issued == 0


async def test_a_listed_server_name_is_intercepted_in_any_case_and_with_a_final_dot(
    proxy: Proxy, origin: Origin, redirect_port: int
) -> None:
    seen = await certificate_seen(redirect_port, "MyRes.OpenAI.Azure.com.")
    assert seen != origin.cert_der
    assert proxy.service.leaves.issued == 1
    assert proxy.service.counters.intercepted == 1


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("api.openai.com", "api.openai.com"),
        ("API.OpenAI.com.", "api.openai.com"),
        ("a/b.openai.azure.com", None),
        ("a..openai.azure.com", None),
        ("-a.openai.azure.com", None),
        ("a b.openai.azure.com", None),
        ("", None),
    ],
)
def test_server_names_and_connect_hosts_are_one_check(value: str, name: str | None) -> None:
    assert host_name(value) == name
    target = parse_authority(f"{value}:443")
    assert (target.host if target is not None else None) == name
