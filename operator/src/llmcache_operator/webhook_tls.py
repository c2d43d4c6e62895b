"""The webhook's TLS without cert-manager: a CA of the operator's own, kept in a Secret.

The API server calls the webhook over HTTPS and trusts only the `caBundle` of the
MutatingWebhookConfiguration. When the Helm chart runs without cert-manager it sets
`LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET`, and at startup the operator (`ensure`):

1. reads that Secret (in `LLMCACHE_OPERATOR_NAMESPACE`); when it is missing, broken,
   close to expiry, or its serving certificate does not name every wanted host, it
   issues what is needed, keeping a CA that is still good, and creates or replaces
   the Secret (optimistically: a conflict means another replica won; its Secret is
   read again and used);
2. writes `tls.crt` and `tls.key` where kopf's webhook server reads them (an
   `emptyDir`: the root filesystem is read-only);
3. puts the CA into the `caBundle` of every webhook of the configuration named by
   `LLMCACHE_OPERATOR_WEBHOOK_CONFIGURATION` (a JSON Patch guarded by `test` ops).

Limits, stated plainly: renewal happens at startup only (the serving certificate is
valid for SERVING_DAYS and renewed when fewer than RENEW_BEFORE_DAYS remain, so an
operator restarted at least once a year never serves an expired one); when the CA
itself is replaced, replicas still serving the old certificate fail the API server's
TLS check until they restart, and because the webhook fails open, pods created
meanwhile start without the sidecar. The CA's private key lives only in the Secret.

| Variable | Meaning |
|---|---|
| LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET | Secret with ca.crt, ca.key, tls.crt, tls.key; unset: off (cert-manager) |
| LLMCACHE_OPERATOR_NAMESPACE | the Secret's namespace (the chart passes the pod's own) |
| LLMCACHE_OPERATOR_WEBHOOK_HOSTS | comma-separated DNS names and IP addresses for the serving certificate |
| LLMCACHE_OPERATOR_WEBHOOK_CONFIGURATION | MutatingWebhookConfiguration whose caBundle is set; unset: none is patched |

Everything but `ensure` is pure (no I/O, the clock passed in) and tested on its own.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from llmcache_operator import pki

PREFIX = "LLMCACHE_OPERATOR_"
CA_DAYS = 3650
SERVING_DAYS = 365
RENEW_BEFORE_DAYS = 90
BACKDATE = pki.BACKDATE
CA_COMMON_NAME = "llmcache webhook CA"
SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")
MAX_ATTEMPTS = 3
logger = logging.getLogger(__name__)


class TLSError(RuntimeError):
    """The webhook's certificate could not be set up."""


@dataclass(frozen=True, slots=True)
class TLSOptions:
    secret: str
    namespace: str
    hosts: tuple[str, ...]
    configuration: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TLSOptions | None:
        """The settings, or None when the operator should not manage the certificate."""

        def get(name: str) -> str:
            return env.get(PREFIX + name, "").strip()

        secret = get("WEBHOOK_TLS_SECRET")
        if not secret:
            return None
        namespace = get("NAMESPACE")
        hosts = tuple(h.strip() for h in get("WEBHOOK_HOSTS").split(",") if h.strip())
        if not namespace:
            raise TLSError(f"{PREFIX}WEBHOOK_TLS_SECRET is set, so {PREFIX}NAMESPACE must name its namespace")
        if not hosts:
            raise TLSError(f"{PREFIX}WEBHOOK_TLS_SECRET is set, so {PREFIX}WEBHOOK_HOSTS must list the webhook's hosts")
        return cls(secret=secret, namespace=namespace, hosts=hosts, configuration=get("WEBHOOK_CONFIGURATION") or None)


@dataclass(frozen=True, slots=True)
class Bundle:
    """PEM-encoded CA and serving certificate with their keys, as kept in the Secret."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    def secret_data(self) -> dict[str, str]:
        values = (self.ca_cert, self.ca_key, self.cert, self.key)
        return {k: base64.b64encode(v).decode("ascii") for k, v in zip(SECRET_KEYS, values, strict=True)}

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None) -> Bundle | None:
        """The bundle in a Secret's `data`, or None when a key is missing or not base64."""
        if not data or any(k not in data for k in SECRET_KEYS):
            return None
        try:
            ca_cert, ca_key, cert, key = (base64.b64decode(data[k], validate=True) for k in SECRET_KEYS)
        except (binascii.Error, ValueError):
            return None
        return cls(ca_cert=ca_cert, ca_key=ca_key, cert=cert, key=key)


# --- Issuing ------------------------------------------------------------------------------


def issue_ca(now: datetime.datetime, *, days: int = CA_DAYS) -> tuple[bytes, bytes]:
    """A self-signed CA (certificate PEM, key PEM) that may sign server certificates only."""
    return pki.issue_ca(now, days=days, common_name=CA_COMMON_NAME)


def issue_serving(
    ca_cert_pem: bytes, ca_key_pem: bytes, hosts: Sequence[str], now: datetime.datetime, *, days: int = SERVING_DAYS
) -> tuple[bytes, bytes]:
    """A server certificate for `hosts` (DNS names or IP addresses), signed by the CA."""
    if not hosts:
        raise TLSError("a serving certificate needs at least one host")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TLSError(f"unsupported CA key type {type(ca_key).__name__}")
    key = pki.new_key()
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(pki.key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), pki.key_pem(key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


# --- Deciding -----------------------------------------------------------------------------


def renewal_reason(bundle: Bundle | None, hosts: Sequence[str], now: datetime.datetime) -> tuple[str, bool] | None:
    """Why the bundle must change, and whether the CA must change too; None when it is good.

    Good means: both certificates parse, the key pairs match, the CA signed the serving
    certificate, neither expires within RENEW_BEFORE_DAYS, and every host is named.
    """
    if bundle is None:
        return "no certificate yet", True
    soon = now + datetime.timedelta(days=RENEW_BEFORE_DAYS)
    try:
        ca = x509.load_pem_x509_certificate(bundle.ca_cert)
        ca_key = serialization.load_pem_private_key(bundle.ca_key, password=None)
    except ValueError:
        return "the CA in the Secret does not parse", True
    if ca.public_key() != ca_key.public_key():
        return "the CA's key does not match its certificate", True
    if ca.not_valid_after_utc <= soon:
        return f"the CA expires {ca.not_valid_after_utc:%Y-%m-%d}", True
    try:
        cert = x509.load_pem_x509_certificate(bundle.cert)
        key = serialization.load_pem_private_key(bundle.key, password=None)
    except ValueError:
        return "the serving certificate in the Secret does not parse", False
    if cert.public_key() != key.public_key():
        return "the serving key does not match its certificate", False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "the serving certificate was not issued by the CA", False
    if cert.not_valid_after_utc <= soon:
        return f"the serving certificate expires {cert.not_valid_after_utc:%Y-%m-%d}", False
    missing = set(hosts) - set(certificate_hosts(bundle.cert))
    if missing:
        return f"the serving certificate does not name {', '.join(sorted(missing))}", False
    return None


def certificate_hosts(cert_pem: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName), *(str(ip) for ip in names.get_values_for_type(x509.IPAddress))]


def renewed(bundle: Bundle | None, hosts: Sequence[str], now: datetime.datetime) -> tuple[Bundle, str | None]:
    """The bundle to use, and why it was changed (None: `bundle` itself, unchanged)."""
    decision = renewal_reason(bundle, hosts, now)
    if decision is None and bundle is not None:
        return bundle, None
    reason, new_ca = decision or ("no certificate yet", True)
    if new_ca or bundle is None:
        ca_cert, ca_key = issue_ca(now)
    else:
        ca_cert, ca_key = bundle.ca_cert, bundle.ca_key
    cert, key = issue_serving(ca_cert, ca_key, hosts, now)
    return Bundle(ca_cert=ca_cert, ca_key=ca_key, cert=cert, key=key), reason


def secret_manifest(options: TLSOptions, bundle: Bundle, resource_version: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": options.secret,
        "namespace": options.namespace,
        "labels": {"app.kubernetes.io/part-of": "llmcache", "app.kubernetes.io/managed-by": "llmcache-operator"},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version  # replace only what was read
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "kubernetes.io/tls",
            "data": bundle.secret_data()}  # fmt: skip


def ca_bundle_patch(configuration: Mapping[str, Any], ca_pem: bytes) -> list[dict[str, Any]]:
    """A JSON Patch that sets `caBundle` on every webhook that lacks this CA; empty when all have it.

    Each change is guarded by a `test` of the webhook's name, so that a configuration
    changed in between (by `helm upgrade`) makes the patch fail rather than hit the wrong entry.
    """
    wanted = base64.b64encode(ca_pem).decode("ascii")
    ops: list[dict[str, Any]] = []
    for index, hook in enumerate(configuration.get("webhooks") or []):
        client_config = hook.get("clientConfig") or {}
        if client_config.get("caBundle") == wanted:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": hook.get("name")})
        ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": wanted})
    return ops


# --- Doing --------------------------------------------------------------------------------


class TLSStore(Protocol):
    """The API calls `ensure` makes; `k8s.Api` implements them."""

    async def read_secret(self, namespace: str, name: str) -> pki.StoredSecret | None:
        """None when the Secret does not exist."""
        ...

    async def create_secret(self, body: Mapping[str, Any]) -> bool:
        """False when a Secret of that name appeared meanwhile."""
        ...

    async def replace_secret(self, body: Mapping[str, Any]) -> bool:
        """False when the Secret changed since it was read (a conflict)."""
        ...

    async def read_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None: ...

    async def patch_mutating_webhook_configuration(self, name: str, ops: list[dict[str, Any]]) -> None: ...


async def ensure(
    store: TLSStore, options: TLSOptions, certfile: str, keyfile: str, *, now: datetime.datetime | None = None
) -> Bundle:
    """Make the Secret hold a good bundle, write the serving pair to files, patch the caBundle."""
    bundle = await _settled_bundle(store, options, now or datetime.datetime.now(datetime.UTC))
    write_pair(bundle, Path(certfile), Path(keyfile))
    if options.configuration is not None:
        configuration = await store.read_mutating_webhook_configuration(options.configuration)
        if configuration is None:
            logger.warning("MutatingWebhookConfiguration %s not found: its caBundle is not set", options.configuration)
        else:
            ops = ca_bundle_patch(configuration, bundle.ca_cert)
            if ops:
                await store.patch_mutating_webhook_configuration(options.configuration, ops)
                logger.info("caBundle set on %d webhook(s) of %s", len(ops) // 2, options.configuration)
    return bundle


async def _settled_bundle(store: TLSStore, options: TLSOptions, now: datetime.datetime) -> Bundle:
    for _ in range(MAX_ATTEMPTS):
        found = await store.read_secret(options.namespace, options.secret)
        current = Bundle.from_secret_data(found.data) if found else None
        bundle, reason = renewed(current, options.hosts, now)
        if reason is None:
            return bundle
        logger.info("issuing the webhook certificate (%s)", reason)
        if found is None:
            stored = await store.create_secret(secret_manifest(options, bundle))
        else:
            stored = await store.replace_secret(secret_manifest(options, bundle, found.resource_version))
        if stored:
            return bundle
        logger.info("Secret %s/%s changed meanwhile (another replica?); reading it again", *_where(options))
    raise TLSError(f"Secret {'/'.join(_where(options))} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def _where(options: TLSOptions) -> tuple[str, str]:
    return options.namespace, options.secret


def write_pair(bundle: Bundle, certfile: Path, keyfile: Path) -> None:
    """Write the serving certificate and key; each file is replaced at once (kopf reloads on change)."""
    for path, content, mode in ((keyfile, bundle.key, 0o600), (certfile, bundle.cert, 0o644)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        os.replace(tmp, path)
