"""Reading the server name from a real ClientHello (made by the ssl module), whole or in pieces."""

from __future__ import annotations

import ssl

import pytest

from llmcache_sidecar.intercept import clienthello


def client_hello(server_name: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = server_name is not None
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def split_into_records(hello: bytes, size: int) -> bytes:
    """The same handshake message carried by several records of at most `size` bytes."""
    body = hello[5:]
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += hello[:3] + len(piece).to_bytes(2) + piece
    return out


def test_the_server_name_is_read_from_a_client_hello() -> None:
    assert clienthello.parse(client_hello("api.openai.com")) == clienthello.Hello("api.openai.com")


def test_a_client_hello_without_a_server_name_has_none() -> None:
    assert clienthello.parse(client_hello(None)) == clienthello.Hello(None)


def test_a_client_hello_spread_over_several_records_is_read_whole() -> None:
    data = split_into_records(client_hello("api.anthropic.com"), 100)
    assert clienthello.parse(data) == clienthello.Hello("api.anthropic.com")


@pytest.mark.parametrize("cut", [1, 5, 40, -1])
def test_a_partial_client_hello_asks_for_more(cut: int) -> None:
    hello = split_into_records(client_hello("api.openai.com"), 100)
    assert clienthello.parse(hello[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", b"\x15\x03\x03\x00\x02\x02\x28"],
    ids=["http", "server-hello", "alert"],
)
def test_what_is_not_a_client_hello_is_not_tls(data: bytes) -> None:
    with pytest.raises(clienthello.NotTLS):
        clienthello.parse(data)


def test_a_field_that_runs_past_its_end_is_not_tls() -> None:
    body = b"\x03\x03" + bytes(32) + b"\xff" + bytes(3)  # a session id longer than the message
    message = b"\x01" + len(body).to_bytes(3) + body
    with pytest.raises(clienthello.NotTLS, match="runs past"):
        clienthello.parse(b"\x16\x03\x01" + len(message).to_bytes(2) + message)
