"""The interception CA of a transparent LLMCache: what it may sign, and its rotation, step by step.

`step` is pure (the clock and the pods' creation times are passed in), so a year of
rotation runs here in milliseconds. What a client would check is checked with
`cryptography`'s X.509 verifier, which enforces name constraints as OpenSSL, Go and
browsers do: the sidecar's own leaf signer (`llmcache_sidecar.intercept.certs.Authority`) signs,
and the verdict is the verifier's. The Secret's round trip through the API server is in
`tests/e2e_k8s/test_transparent_e2e.py`; `ensure` also runs here against an in-memory
store of its three API calls.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from llmcache_operator import interception_ca, pki
from llmcache_operator.interception_ca import FORCE_SWITCH, PROPAGATION, ROTATE_BEFORE, CAState, Step
from llmcache_operator.pki import StoredSecret
from llmcache_sidecar.intercept import certs
from tests.operator.caches import EDGE, cache

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic", "*.openai.azure.com": "azure"}


def first(hosts: dict[str, str] = HOSTS, now: datetime.datetime = NOW) -> Step:
    return interception_ca.step(None, hosts, [], now, namespace="apps")


def verify(state: CAState, host: str, now: datetime.datetime = NOW) -> None:
    """Sign a leaf for `host` as the sidecar does, and verify it as a client trusting the CA would."""
    ca = x509.load_pem_x509_certificate(state.signing.cert_pem)
    key = serialization.load_pem_private_key(state.signing.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    chain_and_key, _ = certs.Authority(ca, key, state.signing.cert_pem).issue(host, 3600, now)
    leaf = x509.load_pem_x509_certificates(chain_and_key)[0]
    verifier = PolicyBuilder().store(Store([ca])).time(now).build_server_verifier(x509.DNSName(host))
    verifier.verify(leaf, [])


def test_a_new_cache_gets_a_ca_that_signs_for_its_hosts_and_nothing_else() -> None:
    result = first()
    assert result.changed == "issued a new CA" and result.pending is None
    assert result.intercepted == HOSTS
    for host in ("api.openai.com", "api.anthropic.com", "contoso.openai.azure.com"):
        verify(result.state, host)
    # A stolen key cannot impersonate another site to a client that enforces the constraints.
    for outsider in ("github.com", "api.openai.com.evil.example", "login.microsoftonline.com"):
        with pytest.raises(VerificationError):
            verify(result.state, outsider)


def test_the_ca_meets_the_contract_the_sidecar_loads() -> None:
    ca = x509.load_pem_x509_certificate(first().state.signing.cert_pem)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    names = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert names.critical
    assert ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca.not_valid_after_utc - NOW > datetime.timedelta(days=360)


def test_a_settled_ca_is_left_alone() -> None:
    state = first().state
    again = interception_ca.step(state, HOSTS, [NOW], NOW + 100 * DAY, namespace="apps")
    assert (again.changed, again.pending, again.state) == (None, None, state)


def test_the_secret_round_trips() -> None:
    state = first().state
    data = state.secret_data()
    assert set(data) == {"tls.crt", "tls.key", "trust.crt"}
    assert base64.b64decode(data["trust.crt"]) == state.signing.cert_pem
    assert CAState.from_secret(data, {}) == state
    broken = {**data, "tls.key": base64.b64encode(b"not a key").decode()}
    assert CAState.from_secret(broken, {}) is None
    assert CAState.from_secret({}, {}) is None


def test_a_rotation_trusts_the_next_ca_first_and_signs_with_it_once_older_pods_are_gone() -> None:
    start = first().state
    expiry = start.signing.not_after
    pod_before = NOW + DAY
    staging_time = expiry - ROTATE_BEFORE + DAY

    staged = interception_ca.step(start, HOSTS, [pod_before], staging_time, namespace="apps")
    assert staged.changed is not None and staged.changed.startswith("staged a CA (it expires")
    assert staged.state.signing == start.signing  # still signing with the current CA
    assert staged.state.next is not None
    trust = x509.load_pem_x509_certificates(staged.state.trust_pem())
    assert [c.not_valid_after_utc for c in trust] == [expiry, staged.state.next.not_after]
    assert staged.pending is not None and "1 pod(s)" in staged.pending

    # The pod that started before the staging still runs: nothing changes.
    waiting = interception_ca.step(staged.state, HOSTS, [pod_before], staging_time + DAY, namespace="apps")
    assert waiting.changed is None and waiting.state == staged.state and waiting.pending

    # A pod created right after the staging may still have mounted the old trust: it counts as older.
    racing = [staging_time + PROPAGATION / 2]
    assert interception_ca.step(staged.state, HOSTS, racing, staging_time + DAY, namespace="apps").pending

    # Replaced by a pod created after the staging: the next CA signs, and alone is trusted.
    replaced = [staging_time + 2 * PROPAGATION]
    switched = interception_ca.step(staged.state, HOSTS, replaced, staging_time + DAY, namespace="apps")
    assert switched.changed == "switched to the staged CA" and switched.pending is None
    assert switched.state == CAState(staged.state.next)
    assert switched.state.trust_pem() == staged.state.next.cert_pem


def test_a_rotation_switches_anyway_shortly_before_the_ca_expires() -> None:
    start = first().state
    staged = interception_ca.step(start, HOSTS, [NOW], start.signing.not_after - ROTATE_BEFORE, namespace="apps")
    late = start.signing.not_after - FORCE_SWITCH + DAY
    forced = interception_ca.step(staged.state, HOSTS, [NOW], late, namespace="apps")
    assert forced.changed == "switched to the staged CA"
    assert forced.state.signing == staged.state.next


def test_a_new_host_waits_for_a_ca_that_permits_it_and_is_tunnelled_meanwhile() -> None:
    start = first().state
    grown = {**HOSTS, "api.mistral.ai": "openai"}
    staged = interception_ca.step(start, grown, [NOW], NOW + DAY, namespace="apps")
    assert staged.changed == "staged a CA (a host was added)"
    assert "api.mistral.ai" not in staged.intercepted  # the signing CA may not sign for it yet
    assert staged.intercepted == HOSTS
    with pytest.raises(VerificationError):
        verify(staged.state, "api.mistral.ai")
    switched = interception_ca.step(staged.state, grown, [NOW + 2 * DAY], NOW + 3 * DAY, namespace="apps")
    assert switched.intercepted == grown
    verify(switched.state, "api.mistral.ai", NOW + 3 * DAY)


def test_a_staged_ca_that_misses_a_host_added_meanwhile_is_staged_again() -> None:
    grown = {**HOSTS, "api.mistral.ai": "openai"}
    staged = interception_ca.step(first().state, grown, [NOW], NOW + DAY, namespace="apps")
    more = {**grown, "api.groq.com": "openai"}
    again = interception_ca.step(staged.state, more, [NOW], NOW + 2 * DAY, namespace="apps")
    assert again.changed == "staged a CA again"
    assert again.state.next is not None and again.state.next.permits_all(sorted(more))
    assert again.state.staged_at == NOW + 2 * DAY


def test_removing_a_host_needs_no_new_ca() -> None:
    start = first().state
    fewer = {"api.openai.com": "openai"}
    result = interception_ca.step(start, fewer, [NOW], NOW + DAY, namespace="apps")
    assert (result.changed, result.state, result.intercepted) == (None, start, fewer)


def test_the_secret_is_owned_by_its_llmcache_and_typed_tls() -> None:
    edge = cache(EDGE, "edge", "apps")
    staged = interception_ca.step(first().state, {**HOSTS, "x.example": "openai"}, [NOW], NOW + DAY, namespace="apps")
    body = interception_ca.secret_manifest(edge, "uid-1", staged.state, "42")
    assert body["type"] == "kubernetes.io/tls"
    assert body["metadata"]["name"] == "llmcache-edge-ca" and body["metadata"]["namespace"] == "apps"
    assert body["metadata"]["resourceVersion"] == "42"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert set(body["data"]) == {"tls.crt", "tls.key", "trust.crt", "next.crt", "next.key"}
    annotations = body["metadata"]["annotations"]
    assert CAState.from_secret(body["data"], annotations) == staged.state


def test_no_ip_address_can_be_impersonated_with_the_ca() -> None:
    # A leaf with an IP SAN would otherwise satisfy DNS-only constraints.
    signing = first().state.signing
    ca = x509.load_pem_x509_certificate(signing.cert_pem)
    key = serialization.load_pem_private_key(signing.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    for address in ("1.2.3.4", "10.96.0.1", "2001:db8::1"):
        chain_and_key, _ = certs.Authority(ca, key, signing.cert_pem).issue(address, 3600, NOW)
        leaf = x509.load_pem_x509_certificates(chain_and_key)[0]
        verifier = (
            PolicyBuilder()
            .store(Store([ca]))
            .time(NOW)
            .build_server_verifier(x509.IPAddress(ipaddress.ip_address(address)))
        )
        with pytest.raises(VerificationError):
            verifier.verify(leaf, [])


def test_a_ca_without_name_constraints_put_in_by_hand_is_rotated_out() -> None:
    cert_pem, key_pem = pki.issue_ca(NOW, days=365, common_name="by hand")  # no constraints
    by_hand = CAState(interception_ca.IssuedCA.load(cert_pem, key_pem))
    result = interception_ca.step(by_hand, HOSTS, [NOW], NOW + DAY, namespace="apps")
    assert result.changed == "staged a CA (a host was added)"
    assert result.intercepted == {}  # nothing is intercepted with it meanwhile
    assert result.state.next is not None and result.state.next.permits_all(sorted(HOSTS))


# --- ensure(), against an in-memory store of the three Secret calls (faked here; the
# e2e_k8s tier runs the same code against a real API server) ---------------------------


class SecretStore:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}

    async def read_secret(self, namespace: str, name: str) -> StoredSecret | None:
        found = self.secrets.get((namespace, name))
        if found is None:
            return None
        body, version = found
        meta = body["metadata"]
        owners = tuple(ref["uid"] for ref in meta.get("ownerReferences", []))
        return StoredSecret(dict(body["data"]), dict(meta.get("annotations", {})), owners, str(version))

    async def create_secret(self, body: Mapping[str, Any]) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.secrets:
            return False
        self.secrets[key] = (dict(body), 1)
        return True

    async def replace_secret(self, body: Mapping[str, Any]) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if str(self.secrets[key][1]) != body["metadata"]["resourceVersion"]:
            return False
        self.secrets[key] = (dict(body), self.secrets[key][1] + 1)
        return True


async def test_ensure_creates_then_leaves_alone_then_repairs_an_edited_secret() -> None:
    store, edge = SecretStore(), cache(EDGE, "edge", "apps")
    created = await interception_ca.ensure(store, edge, "uid-1", [], NOW)
    again = await interception_ca.ensure(store, edge, "uid-1", [], NOW)
    assert created.changed == "issued a new CA" and again.changed is None
    body, version = store.secrets["apps", "llmcache-edge-ca"]
    assert version == 1

    extra = base64.b64decode(body["data"]["trust.crt"]) + pki.issue_ca(NOW, days=1, common_name="sneaked in")[0]
    body["data"]["trust.crt"] = base64.b64encode(extra).decode()
    repaired = await interception_ca.ensure(store, edge, "uid-1", [], NOW)
    assert repaired.changed == "rewrote the Secret, whose content did not match its CA"
    trust = base64.b64decode(store.secrets["apps", "llmcache-edge-ca"][0]["data"]["trust.crt"])
    assert trust == created.state.signing.cert_pem


async def test_ensure_never_touches_a_secret_of_that_name_that_the_llmcache_does_not_own() -> None:
    store, edge = SecretStore(), cache(EDGE, "edge", "apps")
    theirs = {"metadata": {"name": "llmcache-edge-ca", "namespace": "apps"}, "type": "Opaque", "data": {"a": "Yg=="}}
    store.secrets["apps", "llmcache-edge-ca"] = (theirs, 7)
    with pytest.raises(interception_ca.CAError, match="is not owned by this LLMCache"):
        await interception_ca.ensure(store, edge, "uid-1", [], NOW)
    assert store.secrets["apps", "llmcache-edge-ca"] == (theirs, 7)
