"""The server name a TLS client asks for, read from its ClientHello before any answer.

Connections redirected by iptables carry only an IP address as their destination. The
name the client wants (SNI, RFC 6066 §3) decides whether the sidecar intercepts the
connection or tunnels it untouched, and that must be known before the handshake
starts, so the ClientHello is parsed here from bytes peeked off the socket. Only what
is needed is read: record framing (RFC 8446 §5.1), the handshake header, and the
`server_name` extension. Anything malformed is "not TLS".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_HELLO_BYTES: Final = 16 * 1024 + 5
"""A ClientHello larger than one full record (post-quantum key shares fit) is refused."""

_HANDSHAKE: Final = 22
_CLIENT_HELLO: Final = 1
_SERVER_NAME: Final = 0
_HOST_NAME: Final = 0


class NotTLS(ValueError):
    """The bytes are not the start of a TLS ClientHello."""


@dataclass(frozen=True, slots=True)
class Hello:
    server_name: str | None
    """The SNI host name, lower-cased, or None when the client sent none (a bare IP)."""


def parse(data: bytes) -> Hello | None:
    """The ClientHello at the start of `data`; None when more bytes are needed.

    Raises `NotTLS` when `data` cannot be a ClientHello, or when it would be too large.
    """
    message = _handshake_message(data)
    if message is None:
        return None
    return Hello(_server_name(message))


def _handshake_message(data: bytes) -> bytes | None:
    """The first handshake message, gathered from as many records as it spans."""
    fragments = bytearray()
    offset = 0
    needed: int | None = None
    while needed is None or len(fragments) < needed:
        if len(data) < offset + 5:
            if len(data) >= MAX_HELLO_BYTES:
                raise NotTLS("the ClientHello is too large")
            return None
        content_type, major, length = data[offset], data[offset + 1], int.from_bytes(data[offset + 3 : offset + 5])
        if content_type != _HANDSHAKE or major != 3 or not 0 < length <= 16384:
            raise NotTLS("not a TLS handshake record")
        if len(data) < offset + 5 + length:
            if offset + 5 + length > MAX_HELLO_BYTES:
                raise NotTLS("the ClientHello is too large")
            return None
        fragments += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if needed is None and len(fragments) >= 4:
            if fragments[0] != _CLIENT_HELLO:
                raise NotTLS("the first handshake message is not a ClientHello")
            needed = 4 + int.from_bytes(fragments[1:4])
            if needed > MAX_HELLO_BYTES:
                raise NotTLS("the ClientHello is too large")
    assert needed is not None
    return bytes(fragments[4:needed])


class _Reader:
    """Length-prefixed fields of a handshake body; every overrun is `NotTLS`."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise NotTLS("a ClientHello field runs past its end")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def number(self, width: int) -> int:
        return int.from_bytes(self.take(width))

    def vector(self, width: int) -> bytes:
        return self.take(self.number(width))

    @property
    def done(self) -> bool:
        return self._pos >= len(self._data)


def _server_name(body: bytes) -> str | None:
    hello = _Reader(body)
    hello.take(2 + 32)  # legacy_version, random
    hello.vector(1)  # legacy_session_id
    hello.vector(2)  # cipher_suites
    hello.vector(1)  # legacy_compression_methods
    if hello.done:
        return None  # a hello without extensions (TLS 1.2 allows it) has no SNI
    extensions = _Reader(hello.vector(2))
    while not extensions.done:
        kind = extensions.number(2)
        value = extensions.vector(2)
        if kind != _SERVER_NAME:
            continue
        names = _Reader(_Reader(value).vector(2))
        while not names.done:
            name_type = names.number(1)
            name = names.vector(2)
            if name_type == _HOST_NAME:
                try:
                    return name.decode("ascii").lower().rstrip(".")
                except UnicodeDecodeError as exc:
                    raise NotTLS("the server name is not ASCII") from exc
        return None
    return None
