"""Interception certificates: one short-lived leaf per intercepted host, signed by the mounted CA.

Transparent mode terminates the app's TLS to `api.openai.com` with a certificate for
that name, signed by a CA the app has been told to trust (the operator issues one per
LLMCache and mounts its key into the sidecar only). Leaves are made on demand with
`cryptography` (EC P-256: fast to make and to handshake), kept in memory, and renewed
when a quarter of their life is left. Nothing is written to disk: the PEM is handed to
OpenSSL through an anonymous in-memory file (`memfd_create`), so a read-only root file
system is fine. The CA files are re-read when they change (rotation by the operator);
leaves signed by the previous CA are then dropped.

`cryptography` is an optional dependency (`pip install llmcache-sidecar[transparent]`);
only this module imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

CLOCK_SKEW = dt.timedelta(minutes=5)
"""A leaf is valid from a little before it is made, for clients whose clock is behind."""
CA_RECHECK_SECONDS = 10.0
"""How often the CA files are looked at for a rotation."""

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateError(Exception):
    """The CA cannot be loaded or cannot sign."""


@dataclass(frozen=True, slots=True)
class Authority:
    """The CA: its certificate (for the chain and the issuer name) and its signing key."""

    cert: x509.Certificate
    key: _SigningKey
    cert_pem: bytes

    @classmethod
    def load(cls, cert_file: str, key_file: str) -> Authority:
        try:
            cert_pem = Path(cert_file).read_bytes()
            key_pem = Path(key_file).read_bytes()
        except OSError as exc:
            raise CertificateError(f"cannot read the CA: {exc}") from exc
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as exc:
            raise CertificateError(f"the CA files are not PEM certificate and key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CertificateError(f"unsupported CA key type {type(key).__name__}: use EC or RSA")
        if cert.public_key() != key.public_key():
            raise CertificateError("the CA key does not match the CA certificate")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CertificateError("the CA certificate is not a CA (basicConstraints ca=true is missing)")
        return cls(cert, key, cert.public_bytes(serialization.Encoding.PEM))

    def may_sign(self, host: str) -> bool:
        """Whether a leaf for `host` satisfies this CA's name constraints (RFC 5280, 4.2.1.10).

        A client that enforces constraints refuses any other leaf, so such a host is
        tunnelled instead of intercepted: a CA restricted to some hosts never breaks the others.
        """
        try:
            constraints = self.cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return _name_allowed(host.lower(), constraints)
        return _address_allowed(address, constraints)

    def issue(self, host: str, validity: float, now: dt.datetime) -> tuple[bytes, dt.datetime]:
        """A PEM chain (leaf, CA) followed by the leaf's key, and when the leaf expires."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(now + dt.timedelta(seconds=validity), self.cert.not_valid_after_utc)
        if not_after <= now:
            raise CertificateError("the CA certificate has expired")
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "llmcache interception")]
        if len(host) <= 64:  # the upper bound of a commonName; clients read the SAN anyway
            names.append(x509.NameAttribute(NameOID.COMMON_NAME, host))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(names))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return leaf.public_bytes(serialization.Encoding.PEM) + self.cert_pem + key_pem, not_after

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def server_context(chain_and_key: bytes) -> ssl.SSLContext:
    """A TLS server context presenting the given chain: TLS 1.2+, ALPN http/1.1 only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # aiohttp's server speaks HTTP/1.1: a client that offers only h2 gets no ALPN
    # answer and falls back, or gives up; it never gets an h2 stream we cannot read.
    ctx.set_alpn_protocols(["http/1.1"])
    with _pem_path(chain_and_key) as path:
        ctx.load_cert_chain(path)
    return ctx


@contextlib.contextmanager
def _pem_path(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read `data` from, in memory where the system allows it."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("llmcache-leaf", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="llmcache-") as tmp:  # pragma: no cover - not Linux
        path = os.path.join(tmp, "leaf.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield path


@dataclass(frozen=True, slots=True)
class _Leaf:
    context: ssl.SSLContext
    renew_at: float


def _dns_within(name: str, constraint: str) -> bool:
    constraint = constraint.lower().lstrip(".")
    return name == constraint or name.endswith("." + constraint)


def _name_allowed(name: str, constraints: x509.NameConstraints) -> bool:
    def dns(subtrees: list[x509.GeneralName] | None) -> list[str]:
        return [str(n.value) for n in subtrees or () if isinstance(n, x509.DNSName)]

    if any(_dns_within(name, c) for c in dns(constraints.excluded_subtrees)):
        return False
    permitted = dns(constraints.permitted_subtrees)
    return not permitted or any(_dns_within(name, c) for c in permitted)


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, constraints: x509.NameConstraints) -> bool:
    def networks(subtrees: list[x509.GeneralName] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        found = [n.value for n in subtrees or () if isinstance(n, x509.IPAddress)]
        return [n for n in found if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)]

    if any(address in net for net in networks(constraints.excluded_subtrees) if net.version == address.version):
        return False
    permitted = networks(constraints.permitted_subtrees)
    return not permitted or any(address in net for net in permitted if net.version == address.version)


class LeafCache:
    """SSL contexts per intercepted host, made on demand and reused until near expiry.

    Bounded (least recently used hosts go first), so that a wildcard such as
    `*.openai.azure.com` cannot grow it without limit. Concurrent first connections to
    one host share one signing. Signing runs in a worker thread (`asyncio.to_thread`):
    it is a millisecond or so of CPU, once per host per renewal.
    """

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        *,
        validity: float,
        max_hosts: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._files = (cert_file, key_file)
        self._validity = validity
        self._max_hosts = max_hosts
        self._clock = clock
        self._authority = Authority.load(cert_file, key_file)
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()
        self._leaves: OrderedDict[str, _Leaf] = OrderedDict()
        self._pending: dict[str, asyncio.Future[ssl.SSLContext]] = {}
        self.issued = 0

    @property
    def ca_pem(self) -> bytes:
        return self._authority.cert_pem

    def may_sign(self, host: str) -> bool:
        """Whether the current CA's name constraints allow a leaf for `host`."""
        self._maybe_reload()
        return self._authority.may_sign(host)

    async def context_for(self, host: str) -> ssl.SSLContext:
        """The server context for `host`; raises `CertificateError` when the CA cannot sign."""
        self._maybe_reload()
        leaf = self._leaves.get(host)
        if leaf is not None and self._clock() < leaf.renew_at:
            self._leaves.move_to_end(host)
            return leaf.context
        pending = self._pending.get(host)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ssl.SSLContext] = asyncio.get_running_loop().create_future()
        self._pending[host] = future
        try:
            leaf = await asyncio.to_thread(self._make, self._authority, host)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody else awaits stays quiet
            raise
        finally:
            del self._pending[host]
        self._leaves[host] = leaf
        self._leaves.move_to_end(host)
        while len(self._leaves) > self._max_hosts:
            self._leaves.popitem(last=False)
        self.issued += 1
        future.set_result(leaf.context)
        return leaf.context

    def _make(self, authority: Authority, host: str) -> _Leaf:
        """Sign and load one leaf (in a worker thread: touches nothing shared)."""
        now = self._clock()
        pem, not_after = authority.issue(host, self._validity, dt.datetime.fromtimestamp(now, dt.UTC))
        lifetime = not_after.timestamp() - now
        logger.debug("issued an interception certificate for %s, valid %.0fs", host, lifetime)
        return _Leaf(server_context(pem), now + lifetime * 0.75)

    def _file_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for name in self._files:
            try:
                st = os.stat(name)
            except OSError:
                stamps.append((0, 0, 0))
            else:
                stamps.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < CA_RECHECK_SECONDS:
            return
        self._checked = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            authority = Authority.load(*self._files)
        except CertificateError as exc:
            logger.warning("the CA files changed but cannot be loaded, keeping the previous CA: %s", exc)
            return
        self._stamp = stamp
        self._authority = authority
        logger.info("the interception CA changed: reloaded it and dropped %d cached certificates", len(self._leaves))
        self._leaves.clear()
