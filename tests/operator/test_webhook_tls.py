"""The operator's own webhook CA: issuing, deciding when to renew, the Secret, the caBundle patch.

The pure functions are called directly. `ensure` runs against `FakeStore`, an in-memory
stand-in for the four Kubernetes calls (faked here; the e2e_k8s chart test runs the
same code against a real API server). TLS itself is real: a handshake with the issued
certificate is checked with Python's ssl module.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from cryptography import x509

from llmcache_operator import webhook_tls
from llmcache_operator.pki import StoredSecret
from llmcache_operator.webhook_tls import Bundle, TLSError, TLSOptions

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
HOSTS = ("llmcache-webhook", "llmcache-webhook.llmcache-system.svc", "127.0.0.1")
OPTIONS = TLSOptions(secret="llmcache-webhook-tls", namespace="llmcache-system", hosts=HOSTS, configuration="llmcache")


def fresh(hosts: tuple[str, ...] = HOSTS, now: datetime.datetime = NOW) -> Bundle:
    bundle, reason = webhook_tls.renewed(None, hosts, now)
    assert reason == "no certificate yet"
    return bundle


def configuration(*ca_bundles: str | None) -> dict[str, Any]:
    hooks = []
    for i, ca in enumerate(ca_bundles):
        client_config: dict[str, Any] = {"service": {"name": "svc", "namespace": "ns", "path": "/inject-sidecar"}}
        if ca is not None:
            client_config["caBundle"] = ca
        hooks.append({"name": f"hook{i}.llmcache.dev", "clientConfig": client_config})
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "llmcache"}, "webhooks": hooks}  # fmt: skip


# --- Settings from the environment ------------------------------------------------------------


def test_without_a_secret_name_the_operator_leaves_tls_to_others() -> None:
    assert TLSOptions.from_env({}) is None
    assert TLSOptions.from_env({"LLMCACHE_OPERATOR_WEBHOOK_HOSTS": "a"}) is None


def test_the_environment_names_secret_namespace_hosts_and_configuration() -> None:
    env = {
        "LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET": "tls",
        "LLMCACHE_OPERATOR_NAMESPACE": "ops",
        "LLMCACHE_OPERATOR_WEBHOOK_HOSTS": " svc.ops.svc , 10.0.0.1,",
        "LLMCACHE_OPERATOR_WEBHOOK_CONFIGURATION": "llmcache",
    }
    assert TLSOptions.from_env(env) == TLSOptions("tls", "ops", ("svc.ops.svc", "10.0.0.1"), "llmcache")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLMCACHE_OPERATOR_WEBHOOK_HOSTS": "a"}, "LLMCACHE_OPERATOR_NAMESPACE must name"),
        ({"LLMCACHE_OPERATOR_NAMESPACE": "ns"}, "LLMCACHE_OPERATOR_WEBHOOK_HOSTS must list"),
    ],
)
def test_a_secret_without_namespace_or_hosts_is_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(TLSError, match=message):
        TLSOptions.from_env({"LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET": "tls", **env})


# --- Issuing ----------------------------------------------------------------------------------


def test_the_serving_certificate_names_every_host_and_chains_to_the_ca() -> None:
    bundle = fresh()
    cert = x509.load_pem_x509_certificate(bundle.cert)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert)

    assert sorted(webhook_tls.certificate_hosts(bundle.cert)) == sorted(HOSTS)
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=webhook_tls.SERVING_DAYS)
    assert ca.not_valid_after_utc == NOW + datetime.timedelta(days=webhook_tls.CA_DAYS)
    assert cert.not_valid_before_utc < NOW  # backdated a little for clock skew


def test_an_ip_host_becomes_an_ip_address_name_and_a_dns_host_a_dns_name() -> None:
    names = (
        x509.load_pem_x509_certificate(fresh().cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert "127.0.0.1" not in names.get_values_for_type(x509.DNSName)


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    ca_cert, ca_key = webhook_tls.issue_ca(NOW, days=30)
    cert, _ = webhook_tls.issue_serving(ca_cert, ca_key, ["a"], NOW, days=365)
    ca = x509.load_pem_x509_certificate(ca_cert)
    assert x509.load_pem_x509_certificate(cert).not_valid_after_utc == ca.not_valid_after_utc


async def test_a_real_tls_handshake_succeeds_for_a_named_host_and_fails_for_another(tmp_path: Path) -> None:
    bundle = fresh(("localhost",))
    webhook_tls.write_pair(bundle, tmp_path / "tls.crt", tmp_path / "tls.key")

    async def handshake(server_hostname: str) -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        client_ctx = ssl.create_default_context(cadata=bundle.ca_cert.decode())

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname
            )
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    await handshake("localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake("elsewhere")


# --- Deciding when to renew ----------------------------------------------------------------------


def test_a_good_bundle_is_kept_as_it_is() -> None:
    bundle = fresh()
    assert webhook_tls.renewal_reason(bundle, HOSTS, NOW) is None
    assert webhook_tls.renewed(bundle, HOSTS, NOW) == (bundle, None)


def test_a_serving_certificate_close_to_expiry_is_reissued_by_the_same_ca() -> None:
    bundle = fresh()
    later = NOW + datetime.timedelta(days=webhook_tls.SERVING_DAYS - webhook_tls.RENEW_BEFORE_DAYS + 1)
    renewed, reason = webhook_tls.renewed(bundle, HOSTS, later)

    assert reason is not None and reason.startswith("the serving certificate expires")
    assert renewed.ca_cert == bundle.ca_cert and renewed.ca_key == bundle.ca_key
    assert renewed.cert != bundle.cert
    assert webhook_tls.renewal_reason(renewed, HOSTS, later) is None


def test_a_new_host_gets_a_new_serving_certificate_from_the_same_ca() -> None:
    bundle = fresh()
    renewed, reason = webhook_tls.renewed(bundle, (*HOSTS, "llmcache-webhook.llmcache-system.svc.cluster.local"), NOW)
    assert reason == "the serving certificate does not name llmcache-webhook.llmcache-system.svc.cluster.local"
    assert renewed.ca_cert == bundle.ca_cert


def test_a_ca_close_to_expiry_is_replaced_with_everything_else() -> None:
    ca_cert, ca_key = webhook_tls.issue_ca(NOW, days=60)
    cert, key = webhook_tls.issue_serving(ca_cert, ca_key, HOSTS, NOW)
    renewed, reason = webhook_tls.renewed(Bundle(ca_cert, ca_key, cert, key), HOSTS, NOW)
    assert reason is not None and reason.startswith("the CA expires")
    assert renewed.ca_cert != ca_cert


@pytest.mark.parametrize(
    ("damage", "reason", "new_ca"),
    [
        (lambda b, o: Bundle(b"junk", b.ca_key, b.cert, b.key), "the CA in the Secret does not parse", True),
        (lambda b, o: Bundle(b.ca_cert, o.ca_key, b.cert, b.key), "the CA's key does not match its certificate", True),
        (lambda b, o: Bundle(b.ca_cert, b.ca_key, b"junk", b.key), "the serving certificate in the Secret does not parse",
         False),
        (lambda b, o: Bundle(b.ca_cert, b.ca_key, b.cert, o.key), "the serving key does not match its certificate", False),
        (lambda b, o: Bundle(b.ca_cert, b.ca_key, o.cert, o.key), "the serving certificate was not issued by the CA",
         False),
    ],
)  # fmt: skip
def test_a_broken_or_mismatched_bundle_is_repaired(damage: Any, reason: str, new_ca: bool) -> None:
    good, other = fresh(), fresh()
    assert webhook_tls.renewal_reason(damage(good, other), HOSTS, NOW) == (reason, new_ca)


# --- The Secret ----------------------------------------------------------------------------------


def test_the_secret_round_trips_and_is_a_tls_secret() -> None:
    bundle = fresh()
    manifest = webhook_tls.secret_manifest(OPTIONS, bundle, "42")

    assert manifest["type"] == "kubernetes.io/tls"
    assert sorted(manifest["data"]) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert manifest["metadata"]["resourceVersion"] == "42"
    assert Bundle.from_secret_data(manifest["data"]) == bundle
    assert "resourceVersion" not in webhook_tls.secret_manifest(OPTIONS, bundle)["metadata"]


@pytest.mark.parametrize(
    "data", [None, {}, {"tls.crt": "YQ=="}, {k: "!!not base64!!" for k in webhook_tls.SECRET_KEYS}]
)
def test_a_secret_missing_keys_or_not_base64_counts_as_no_bundle(data: Mapping[str, str] | None) -> None:
    assert Bundle.from_secret_data(data) is None


# --- The caBundle patch --------------------------------------------------------------------------


def test_the_patch_sets_the_ca_on_every_webhook_that_lacks_it() -> None:
    bundle = fresh()
    wanted = base64.b64encode(bundle.ca_cert).decode()
    before = configuration(None, "b2xk", wanted)
    ops = webhook_tls.ca_bundle_patch(before, bundle.ca_cert)
    after = jsonpatch.apply_patch(before, ops)

    assert [hook["clientConfig"]["caBundle"] for hook in after["webhooks"]] == [wanted, wanted, wanted]
    assert len(ops) == 4  # a test and an add for each of the two that changed
    assert webhook_tls.ca_bundle_patch(after, bundle.ca_cert) == []


def test_the_patch_fails_instead_of_hitting_a_webhook_that_moved() -> None:
    ops = webhook_tls.ca_bundle_patch(configuration(None, None), fresh().ca_cert)
    moved = configuration(None, None)
    moved["webhooks"].reverse()
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, ops)


# --- ensure(), against an in-memory store ---------------------------------------------------------


class FakeStore:
    """The TLSStore calls, in memory; `steal` makes another 'replica' win the next write."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], tuple[dict[str, str], int]] = {}
        self.configurations: dict[str, dict[str, Any]] = {"llmcache": configuration(None)}
        self.steal: Bundle | None = None
        self.writes = 0

    def _stolen(self, key: tuple[str, str]) -> bool:
        if self.steal is None:
            return False
        _, version = self.secrets.get(key, ({}, 0))
        self.secrets[key] = (self.steal.secret_data(), version + 1)
        self.steal = None
        return True

    async def read_secret(self, namespace: str, name: str) -> StoredSecret | None:
        found = self.secrets.get((namespace, name))
        return None if found is None else StoredSecret(dict(found[0]), {}, (), str(found[1]))

    async def create_secret(self, body: Mapping[str, Any]) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if self._stolen(key) or key in self.secrets:
            return False
        self.writes += 1
        self.secrets[key] = (dict(body["data"]), 1)
        return True

    async def replace_secret(self, body: Mapping[str, Any]) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if self._stolen(key) or str(self.secrets[key][1]) != body["metadata"]["resourceVersion"]:
            return False
        self.writes += 1
        self.secrets[key] = (dict(body["data"]), self.secrets[key][1] + 1)
        return True

    async def read_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        return self.configurations.get(name)

    async def patch_mutating_webhook_configuration(self, name: str, ops: list[dict[str, Any]]) -> None:
        self.configurations[name] = jsonpatch.apply_patch(self.configurations[name], ops)


async def test_the_first_start_creates_the_secret_writes_the_files_and_sets_the_ca_bundle(tmp_path: Path) -> None:
    store = FakeStore()
    bundle = await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), now=NOW)

    stored = Bundle.from_secret_data(store.secrets["llmcache-system", "llmcache-webhook-tls"][0])
    assert stored == bundle
    assert (tmp_path / "tls.crt").read_bytes() == bundle.cert
    assert (tmp_path / "tls.key").read_bytes() == bundle.key
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0
    ca = store.configurations["llmcache"]["webhooks"][0]["clientConfig"]["caBundle"]
    assert base64.b64decode(ca) == bundle.ca_cert


async def test_a_restart_reuses_the_secret_and_writes_nothing(tmp_path: Path) -> None:
    store = FakeStore()
    first = await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "a.crt"), str(tmp_path / "a.key"), now=NOW)
    second = await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "b.crt"), str(tmp_path / "b.key"), now=NOW)
    assert first == second and store.writes == 1


async def test_a_replica_that_loses_the_race_uses_the_winners_certificate(tmp_path: Path) -> None:
    store = FakeStore()
    winner = fresh()
    store.steal = winner
    bundle = await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), now=NOW)
    assert bundle == winner and store.writes == 0


async def test_an_expiring_certificate_is_replaced_at_its_resource_version(tmp_path: Path) -> None:
    store = FakeStore()
    old = await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), now=NOW)
    later = NOW + datetime.timedelta(days=webhook_tls.SERVING_DAYS - 10)
    new = await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), now=later)
    assert new.ca_cert == old.ca_cert and new.cert != old.cert
    assert store.secrets["llmcache-system", "llmcache-webhook-tls"][1] == 2


async def test_a_missing_webhook_configuration_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.configurations.clear()
    await webhook_tls.ensure(store, OPTIONS, str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), now=NOW)
    assert "MutatingWebhookConfiguration llmcache not found" in caplog.text
