"""Where interception stops: other hosts are tunnelled untouched, and trust is never downgraded.

Clients here speak to the proxy by hand where the point is what happens on the wire
(which certificate the client sees, what ALPN is chosen); otherwise through httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from pathlib import Path

import httpx
import pytest

from llmcache_operator import pki as pki_tools
from llmcache_sidecar.intercept.service import ESTABLISHED
from tests.conftest import Upstream
from tests.transparent.conftest import Origin, Pki, Proxy, ProxyFactory, TlsUpstream

AUTH = {"Authorization": "Bearer sk-a"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


async def open_tunnel(proxy: Proxy, authority: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """CONNECT through the proxy; returns the stream and the proxy's answer head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, head


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


async def peer_certificate(proxy: Proxy, authority: str, server_name: str, ctx: ssl.SSLContext) -> bytes:
    _, writer, head = await open_tunnel(proxy, authority)
    assert head == ESTABLISHED
    await writer.start_tls(ctx, server_hostname=server_name)
    der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    await close(writer)
    return der


async def test_a_host_that_is_not_listed_is_tunnelled_and_shows_its_own_certificate(
    proxy: Proxy, pki: Pki, origin: Origin
) -> None:
    der = await peer_certificate(proxy, f"127.0.0.1:{origin.port}", "127.0.0.1", pki.client_context())
    assert der == origin.cert_der

    async with httpx.AsyncClient(proxy=proxy.url, verify=pki.client_context(trust_intercept=False)) as http:
        r = await http.get(f"https://127.0.0.1:{origin.port}/")
    assert r.text == "hello from the origin"
    assert "cache-status" not in r.headers
    assert proxy.service.counters.tunnelled == 2
    assert proxy.service.counters.intercepted == 0
    assert proxy.service.leaves.issued == 0  # nothing was ever signed for it


async def test_a_listed_host_shows_a_certificate_for_its_name_from_the_interception_ca(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    ctx = ssl.create_default_context()
    pki.intercept_ca.configure_trust(ctx)  # only ours: the handshake proves who signed it
    for name in ("api.openai.com", "myres.openai.azure.com"):
        der = await peer_certificate(proxy, f"{name}:443", name, ctx)
        assert der
    assert proxy.service.leaves.issued == 2


async def test_a_client_that_does_not_trust_the_interception_ca_fails_the_handshake(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    async with httpx.AsyncClient(proxy=proxy.url, verify=pki.client_context(trust_intercept=False)) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.post("https://api.openai.com/v1/chat/completions", json=CHAT)
    assert tls_upstream.fake.count() == 0
    for _ in range(50):  # the sidecar sees the client's alert a moment later
        if proxy.service.counters.handshake_failures:
            break
        await asyncio.sleep(0.02)
    assert proxy.service.counters.handshake_failures == 1


@pytest.mark.parametrize("upstream_cert", ["untrusted-ca", "wrong-name"], indirect=True)
async def test_an_origin_certificate_that_does_not_verify_is_refused_with_502(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    async with httpx.AsyncClient(proxy=proxy.url, verify=pki.client_context()) as http:
        r = await http.post("https://api.openai.com/v1/chat/completions", json=CHAT, headers=AUTH)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"
    assert "certificate" in r.json()["error"]["message"].lower()
    assert tls_upstream.fake.count() == 0  # no request ever reached it


async def test_the_tunnel_negotiates_http_1_1_even_when_the_client_prefers_h2(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    _, writer, head = await open_tunnel(proxy, "api.openai.com:443")
    assert head == ESTABLISHED
    ctx = pki.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    await writer.start_tls(ctx, server_hostname="api.openai.com")
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    await close(writer)


async def test_plain_http_proxy_requests_to_a_listed_host_are_cached_and_sent_upstream_over_tls(
    proxy: Proxy, tls_upstream: TlsUpstream
) -> None:
    async with httpx.AsyncClient(proxy=proxy.url) as http:
        statuses = []
        for _ in range(2):
            r = await http.post("http://api.openai.com/v1/chat/completions", json=CHAT, headers=AUTH)
            assert r.status_code == 200
            statuses.append(r.headers["cache-status"])
    assert statuses == ["llmcache; fwd=miss; stored", "llmcache; hit"]
    assert tls_upstream.fake.count("/v1/chat/completions") == 1  # the fake serves TLS only


async def test_plain_http_proxy_requests_to_other_hosts_are_forwarded_as_they_are(
    proxy: Proxy, upstream: Upstream
) -> None:
    """`upstream` is the plain-HTTP fake provider on 127.0.0.1, a host that is not listed."""
    async with httpx.AsyncClient(proxy=proxy.url) as http:
        for _ in range(2):
            r = await http.post(f"{upstream.url}/v1/chat/completions", json=CHAT, headers=AUTH)
            assert r.status_code == 200
            assert "cache-status" not in r.headers
    assert upstream.fake.count("/v1/chat/completions") == 2


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("CONNECT api.openai.com HTTP/1.1", b"400"),
        ("CONNECT api.openai.com:99999 HTTP/1.1", b"400"),
        ("CONNECT bad_host!:443 HTTP/1.1", b"400"),
        ("CONNECT 127.0.0.1:1 HTTP/1.1", b"502"),
    ],
    ids=["no-port", "bad-port", "bad-host", "refused"],
)
async def test_a_bad_or_unreachable_connect_target_gets_an_error_and_a_close(
    proxy: Proxy, line: str, status: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"{line}\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.split(b" ")[1] == status
    assert b"Connection: close" in answer
    await close(writer)


async def test_a_client_that_sends_before_the_200_of_an_intercepted_connect_is_refused(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"CONNECT api.openai.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01")
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 400 ")
    await close(writer)


async def test_the_tunnel_carries_a_half_close_and_the_answer_after_it(proxy: Proxy) -> None:
    """A client that shuts its write side still reads the origin's whole answer."""

    async def echo_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF
        writer.write(b"got " + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer, head = await open_tunnel(proxy, f"127.0.0.1:{port}")
        assert head == ESTABLISHED
        writer.write(b"x" * 300_000)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer == b"got " + b"x" * 300_000
        await close(writer)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("head", "expect"),
    [
        (
            b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-a\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            b"cache-status: llmcache; fwd=miss",  # the app's reverse-proxy route served it
        ),
        (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", b"HTTP/1.1 502 Bad Gateway"),  # the front answered
    ],
    ids=["reverse-proxy", "connect"],
)
async def test_a_request_that_arrives_byte_by_byte_is_still_routed(
    proxy: Proxy, tls_upstream: TlsUpstream, head: bytes, expect: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for i in range(len(head)):
        writer.write(head[i : i + 1])
        await writer.drain()
        await asyncio.sleep(0)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert expect.lower() in answer.lower()
    await close(writer)


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmcache_sidecar.intercept import front

    monkeypatch.setattr(front, "HEAD_TIMEOUT", 0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 408 ")
    await close(writer)


async def test_a_listed_host_the_cas_name_constraints_exclude_is_tunnelled_not_intercepted(
    make_proxy: ProxyFactory, pki: Pki, origin: Origin, tls_upstream: TlsUpstream, tmp_path: Path
) -> None:
    # The operator's CA may sign only for the hosts it was issued for. A host listed later (or a
    # cache switched back to base-URL mode) must not get a leaf that every client would refuse.
    cert_pem, key_pem = pki_tools.issue_ca(
        datetime.datetime.now(datetime.UTC), days=30, common_name="constrained", permitted_dns=["api.openai.com"]
    )
    (tmp_path / "ca.crt").write_bytes(cert_pem)
    (tmp_path / "ca.key").write_bytes(key_pem)
    transparent = {"enabled": True, "caCertFile": str(tmp_path / "ca.crt"), "caKeyFile": str(tmp_path / "ca.key"),
                   "hosts": {"api.openai.com": "openai", "localhost": "openai"}}  # fmt: skip
    proxy = await make_proxy(transparent=transparent)
    constrained = ssl.create_default_context(cadata=cert_pem.decode())

    tunnelled = await peer_certificate(proxy, f"localhost:{origin.port}", "localhost", pki.client_context())
    intercepted = await peer_certificate(proxy, "api.openai.com:443", "api.openai.com", constrained)

    assert tunnelled == origin.cert_der  # the origin's own certificate: never decrypted
    assert intercepted != origin.cert_der
    assert (proxy.service.counters.tunnelled, proxy.service.leaves.issued) == (1, 1)
