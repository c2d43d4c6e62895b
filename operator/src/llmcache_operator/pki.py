"""Certificate pieces both operator CAs share: the webhook's own CA and the interception CAs.

EC P-256 keys, PKCS#8 PEM, SHA-256 signatures. Pure: the clock is passed in.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BACKDATE = datetime.timedelta(minutes=5)
"""Certificates are valid from a little before they are made: clocks in a cluster differ a little."""


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """A Secret as read back: what the certificate code decides on."""

    data: dict[str, str]
    """Base64 values, as the API returns them."""
    annotations: dict[str, str]
    owners: tuple[str, ...]
    """The uids of its ownerReferences."""
    resource_version: str


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, key_format = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, key_format, serialization.NoEncryption())


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_ca(
    now: datetime.datetime,
    *,
    days: int,
    common_name: str,
    organization: str | None = None,
    permitted_dns: Iterable[str] | None = None,
) -> tuple[bytes, bytes]:
    """A self-signed CA (certificate PEM, key PEM) that may sign end-entity certificates only.

    With `permitted_dns`, a critical nameConstraints extension limits what it may sign to
    those DNS names and their subdomains, and excludes every IP address, for every client
    that enforces constraints.
    """
    key = new_key()
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if permitted_dns is not None:
        permitted: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(set(permitted_dns))]
        no_address: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=no_address), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)
