"""The interception CA of a transparent LLMCache: issued, kept in a Secret the LLMCache owns, rotated.

The Secret `llmcache-<cache>-ca` (type `kubernetes.io/tls`, in the cache's namespace):

| Key | What | Mounted into |
|---|---|---|
| tls.crt, tls.key | the CA the sidecars sign with | the sidecar container only |
| trust.crt | every CA apps must trust now | the init container that builds the trust bundle |
| next.crt, next.key | the next CA, while a rotation waits | nothing |

Each CA is EC P-256, valid CA_DAYS, `CA:TRUE, pathlen:0`, and carries critical name
constraints: it can sign only for the intercepted hosts (`*.openai.azure.com` permits
`openai.azure.com` and its subdomains). A stolen key cannot impersonate anything else
to clients that enforce constraints (OpenSSL, Go, NSS, Node).

Apps read their trust bundle when they start, so a new CA is brought in two steps:

1. **Stage**: when the signing CA expires within ROTATE_BEFORE, or does not permit a
   host the spec intercepts, a next CA is issued and added to `trust.crt`; the time is
   kept in the annotation STAGED_ANNOTATION.
2. **Switch**: once every pod carrying this cache's sidecar was created at least
   PROPAGATION after the staging (so its bundle has the next CA), or the signing CA
   expires within FORCE_SWITCH, the next CA signs and `trust.crt` holds it alone.

Until the switch, hosts the signing CA does not permit are left out of the sidecar's
intercepted hosts (`intercepted`): their calls are tunnelled, uncached, instead of
failing a handshake. Everything here but the `CAStore` protocol is pure (the clock is
passed in).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from llmcache_operator import pki, reconcile
from llmcache_operator.spec import Cache

CA_DAYS = 365
ROTATE_BEFORE = datetime.timedelta(days=30)
FORCE_SWITCH = datetime.timedelta(days=7)
PROPAGATION = datetime.timedelta(minutes=2)
"""How long a Secret change may take to reach a new pod's volume (the kubelet's Secret cache)."""
STAGED_ANNOTATION = "llmcache.dev/next-ca-staged-at"
ORGANIZATION = "llmcache interception"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def constraint_name(host_pattern: str) -> str:
    """The DNS name constraint that covers a host pattern: `*.x.y` -> `x.y`."""
    return host_pattern.removeprefix("*.")


def permits(constraints: frozenset[str], host_pattern: str) -> bool:
    """Whether a CA with these permitted DNS subtrees may sign for every name the pattern matches."""
    name = constraint_name(host_pattern)
    return any(name == c or name.endswith("." + c) for c in constraints)


@dataclass(frozen=True, slots=True)
class IssuedCA:
    """One CA, as PEM and as understood."""

    cert_pem: bytes
    key_pem: bytes
    not_after: datetime.datetime
    permitted: frozenset[str]

    @classmethod
    def issue(cls, hosts: Sequence[str], now: datetime.datetime, *, namespace: str) -> IssuedCA:
        names = {constraint_name(h) for h in hosts}
        cert_pem, key_pem = pki.issue_ca(
            now,
            days=CA_DAYS,
            common_name=f"llmcache interception CA ({namespace}) {now:%Y-%m-%d}"[:64],
            organization=ORGANIZATION,
            permitted_dns=names,
        )
        return cls.load(cert_pem, key_pem)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes) -> IssuedCA:
        """Raises ValueError when the pair is not a usable CA."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if cert.public_key() != key.public_key():
            raise ValueError("the CA key does not match its certificate")
        try:
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise ValueError("not a CA certificate") from None
        if not basic.ca:
            raise ValueError("not a CA certificate")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            # Not one of ours (put in by hand?): it permits nothing here, so a rotation
            # replaces it with a constrained CA, in the usual two steps.
            return cls(cert_pem, key_pem, cert.not_valid_after_utc, frozenset())
        subtrees = constraints.permitted_subtrees or ()
        names = frozenset(str(n.value) for n in subtrees if isinstance(n, x509.DNSName))
        return cls(cert_pem, key_pem, cert.not_valid_after_utc, names)

    def permits_all(self, hosts: Sequence[str]) -> bool:
        return all(permits(self.permitted, h) for h in hosts)


@dataclass(frozen=True, slots=True)
class CAState:
    """What the Secret holds."""

    signing: IssuedCA
    next: IssuedCA | None = None
    staged_at: datetime.datetime | None = None

    def trust_pem(self) -> bytes:
        return self.signing.cert_pem + (self.next.cert_pem if self.next else b"")

    def secret_data(self) -> dict[str, str]:
        values = {"tls.crt": self.signing.cert_pem, "tls.key": self.signing.key_pem, "trust.crt": self.trust_pem()}
        if self.next is not None:
            values |= {"next.crt": self.next.cert_pem, "next.key": self.next.key_pem}
        return {k: base64.b64encode(v).decode("ascii") for k, v in values.items()}

    @classmethod
    def from_secret(cls, data: Mapping[str, str] | None, annotations: Mapping[str, str] | None) -> CAState | None:
        """The state in a Secret, or None when it is missing or broken (a fresh CA is then issued)."""
        try:
            raw = {k: base64.b64decode(v, validate=True) for k, v in (data or {}).items()}
            signing = IssuedCA.load(raw["tls.crt"], raw["tls.key"])
        except (KeyError, ValueError, binascii.Error):
            return None
        try:
            following = IssuedCA.load(raw["next.crt"], raw["next.key"])
            staged_at = _parse_time((annotations or {})[STAGED_ANNOTATION])
        except (KeyError, ValueError):
            return cls(signing)  # a broken next CA is issued again
        return cls(signing, following, staged_at)


@dataclass(frozen=True, slots=True)
class Step:
    state: CAState
    changed: str | None
    """Why the Secret must be written; None: it stays as it is."""
    pending: str | None
    """What a rotation waits for, for the status; None: nothing."""
    intercepted: dict[str, str]
    """The hosts the sidecars may intercept now: those the signing CA permits."""


def step(
    state: CAState | None,
    hosts: Mapping[str, str],
    pods_created: Sequence[datetime.datetime],
    now: datetime.datetime,
    *,
    namespace: str,
) -> Step:
    """The next state of a cache's CA, given the hosts its spec intercepts and its pods' creation times."""
    wanted = sorted(hosts)
    if state is None:
        return _settled(CAState(IssuedCA.issue(wanted, now, namespace=namespace)), hosts, "issued a new CA", None)
    following, staged_at, changed = state.next, state.staged_at, None
    expiring = state.signing.not_after - now <= ROTATE_BEFORE
    if following is None and (expiring or not state.signing.permits_all(wanted)):
        why = f"it expires {state.signing.not_after:%Y-%m-%d}" if expiring else "a host was added"
        following, staged_at, changed = IssuedCA.issue(wanted, now, namespace=namespace), now, f"staged a CA ({why})"
    elif following is not None and not following.permits_all(wanted):
        following, staged_at, changed = IssuedCA.issue(wanted, now, namespace=namespace), now, "staged a CA again"
    if following is None or staged_at is None:
        return _settled(state, hosts, changed, None)
    older = [t for t in pods_created if t < staged_at + PROPAGATION]
    if not older or state.signing.not_after - now <= FORCE_SWITCH:
        return _settled(CAState(following), hosts, "switched to the staged CA", None)
    pending = (
        f"{len(older)} pod(s) created before the next CA was trusted ({staged_at:{TIME_FORMAT}}) still run;"
        f" the sidecars switch to it when those are replaced, at the latest"
        f" {state.signing.not_after - FORCE_SWITCH:%Y-%m-%d}"
    )
    return _settled(CAState(state.signing, following, staged_at), hosts, changed, pending)


def _settled(state: CAState, hosts: Mapping[str, str], changed: str | None, pending: str | None) -> Step:
    signing = state.signing
    intercepted = {h: p for h, p in hosts.items() if permits(signing.permitted, h)}
    return Step(state, changed, pending, intercepted)


def secret_manifest(cache: Cache, uid: str, state: CAState, resource_version: str | None = None) -> dict[str, Any]:
    """The Secret for `state`, owned by the LLMCache so that it goes when the resource goes."""
    metadata: dict[str, Any] = {
        "name": cache.ca_secret,
        "namespace": cache.namespace,
        "labels": {**reconcile.COMMON_LABELS, reconcile.CACHE_LABEL: cache.name},
        "annotations": {STAGED_ANNOTATION: state.staged_at.strftime(TIME_FORMAT)} if state.staged_at else {},
        "ownerReferences": [reconcile.owner_reference(cache, uid)],
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version  # replace only what was read
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/tls",
        "data": state.secret_data(),
    }


class CAStore(Protocol):
    """The API calls `ensure` makes; `k8s.Api` implements them."""

    async def read_secret(self, namespace: str, name: str) -> pki.StoredSecret | None:
        """None when the Secret does not exist."""
        ...

    async def create_secret(self, body: Mapping[str, Any]) -> bool: ...

    async def replace_secret(self, body: Mapping[str, Any]) -> bool: ...


class CAError(RuntimeError):
    """The CA Secret could not be written."""


async def ensure(
    store: CAStore,
    cache: Cache,
    uid: str,
    pods_created: Sequence[datetime.datetime],
    now: datetime.datetime,
    *,
    attempts: int = 3,
) -> Step:
    """Read the cache's CA Secret, take one step, and write it back when it changed.

    Refuses (CAError) to touch a Secret of that name that this LLMCache does not own: it
    is someone else's. Rewrites one whose content differs from what its CA state implies
    (a certificate added to trust.crt by hand, say).
    """
    hosts = cache.settings.transparent.hosts
    for _ in range(attempts):
        found = await store.read_secret(cache.namespace, cache.ca_secret)
        if found is not None and uid not in found.owners:
            raise CAError(
                f"Secret {cache.namespace}/{cache.ca_secret} exists and is not owned by this LLMCache:"
                " the operator keeps the CA there; delete or rename that Secret"
            )
        state = CAState.from_secret(found.data, found.annotations) if found else None
        result = step(state, hosts, pods_created, now, namespace=cache.namespace)
        if result.changed is None and found is not None and found.data != result.state.secret_data():
            result = replace(result, changed="rewrote the Secret, whose content did not match its CA")
        if result.changed is None:
            return result
        if found is None:
            stored = await store.create_secret(secret_manifest(cache, uid, result.state))
        else:
            stored = await store.replace_secret(secret_manifest(cache, uid, result.state, found.resource_version))
        if stored:
            return result
    raise CAError(f"Secret {cache.namespace}/{cache.ca_secret} kept changing; gave up after {attempts} attempts")


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.UTC)
