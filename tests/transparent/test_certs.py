"""Interception certificates: what a leaf says, how long it lives, and what the CA must be."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from llmcache_sidecar.intercept import certs
from tests.transparent.conftest import Pki

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def leaf_of(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[0]


def test_a_leaf_names_exactly_the_host_in_its_san_and_is_for_servers_only(pki: Pki) -> None:
    authority = certs.Authority.load(str(pki.ca_cert_file), str(pki.ca_key_file))
    pem, _ = authority.issue("myres.openai.azure.com", 3600, NOW)
    leaf = leaf_of(pem)

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["myres.openai.azure.com"]  # never a wildcard
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert leaf.issuer == authority.cert.subject
    leaf.verify_directly_issued_by(authority.cert)


def test_a_leaf_lives_for_the_configured_validity_and_never_past_the_ca(pki: Pki) -> None:
    authority = certs.Authority.load(str(pki.ca_cert_file), str(pki.ca_key_file))
    pem, not_after = authority.issue("api.openai.com", 3600, NOW)
    leaf = leaf_of(pem)
    assert leaf.not_valid_after_utc == not_after == NOW + dt.timedelta(hours=1)
    assert leaf.not_valid_before_utc == NOW - certs.CLOCK_SKEW

    late = authority.cert.not_valid_after_utc - dt.timedelta(minutes=10)
    _, capped = authority.issue("api.openai.com", 86400, late)
    assert capped == authority.cert.not_valid_after_utc.replace(microsecond=0)


def test_the_chain_carries_the_leaf_then_the_ca_and_the_key(pki: Pki) -> None:
    authority = certs.Authority.load(str(pki.ca_cert_file), str(pki.ca_key_file))
    pem, _ = authority.issue("api.openai.com", 3600, NOW)
    chain = x509.load_pem_x509_certificates(pem)
    assert [c.subject for c in chain][1] == authority.cert.subject
    assert b"PRIVATE KEY" in pem


async def test_leaves_are_cached_and_renewed_when_a_quarter_of_their_life_is_left(pki: Pki) -> None:
    clock = [NOW.timestamp()]
    cache = certs.LeafCache(str(pki.ca_cert_file), str(pki.ca_key_file), validity=4000, clock=lambda: clock[0])
    first = await cache.context_for("api.openai.com")
    clock[0] += 2999
    assert await cache.context_for("api.openai.com") is first
    clock[0] += 2
    assert await cache.context_for("api.openai.com") is not first
    assert cache.issued == 2


async def test_the_cache_holds_a_bounded_number_of_hosts(pki: Pki) -> None:
    cache = certs.LeafCache(str(pki.ca_cert_file), str(pki.ca_key_file), validity=3600, max_hosts=2)
    a = await cache.context_for("a.openai.azure.com")
    await cache.context_for("b.openai.azure.com")
    await cache.context_for("c.openai.azure.com")
    assert await cache.context_for("a.openai.azure.com") is not a
    assert cache.issued == 4


async def test_a_rotated_ca_is_picked_up_and_old_leaves_are_dropped(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = tmp_path / "ca.crt", tmp_path / "ca.key"
    shutil.copy(pki.ca_cert_file, cert_file)
    shutil.copy(pki.ca_key_file, key_file)
    monkeypatch.setattr(certs, "CA_RECHECK_SECONDS", 0.0)
    cache = certs.LeafCache(str(cert_file), str(key_file), validity=3600)
    before = await cache.context_for("api.openai.com")

    rotated = trustme.CA()
    rotated.cert_pem.write_to_path(str(cert_file))
    rotated.private_key_pem.write_to_path(str(key_file))
    os.utime(cert_file, ns=(1, 1))  # a different stamp even within one clock tick
    after = await cache.context_for("api.openai.com")

    assert after is not before
    assert cache.ca_pem == rotated.cert_pem.bytes()


async def test_a_ca_rotation_that_is_half_written_keeps_the_previous_ca(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = tmp_path / "ca.crt", tmp_path / "ca.key"
    shutil.copy(pki.ca_cert_file, cert_file)
    shutil.copy(pki.ca_key_file, key_file)
    monkeypatch.setattr(certs, "CA_RECHECK_SECONDS", 0.0)
    cache = certs.LeafCache(str(cert_file), str(key_file), validity=3600)
    trustme.CA().cert_pem.write_to_path(str(cert_file))  # the key does not match it (yet)
    ctx = await cache.context_for("api.openai.com")
    assert isinstance(ctx, ssl.SSLContext)
    assert cache.ca_pem == pki.intercept_ca.cert_pem.bytes()


def test_a_key_that_does_not_match_the_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    trustme.CA().private_key_pem.write_to_path(str(other))
    with pytest.raises(certs.CertificateError, match="does not match"):
        certs.Authority.load(str(pki.ca_cert_file), str(other))


def test_a_certificate_that_is_not_a_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.intercept_ca.issue_cert("not-a-ca.example")
    cert_file, key_file = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    with pytest.raises(certs.CertificateError, match="not a CA"):
        certs.Authority.load(str(cert_file), str(key_file))


def test_missing_ca_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(certs.CertificateError, match="cannot read the CA"):
        certs.Authority.load(str(tmp_path / "nope.crt"), str(tmp_path / "nope.key"))
