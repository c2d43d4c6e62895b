"""The tenant salt: a Secret the operator makes once per LLMCache, mounted into its sidecars (issue 15, finding 9)."""

from __future__ import annotations

from pathlib import Path

from llmcache_operator import injection, reconcile
from llmcache_operator.injection import Policy
from llmcache_sidecar import config
from tests.operator.caches import MODELS, SHARED, cache

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"llmcache.dev/enabled": "true"}},
    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
}


def test_the_salt_is_a_secret_of_its_own_owned_by_its_llmcache() -> None:
    shared = cache(SHARED, "shared", "team-a")
    secret = reconcile.salt_secret(shared, uid="uid-1", value="s" * 43)
    assert secret["metadata"]["name"] == "llmcache-shared-salt" == shared.salt_secret
    assert secret["metadata"]["namespace"] == "team-a"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert secret["stringData"] == {"salt": "s" * 43}


def test_the_operators_own_sidecar_reads_the_salt_from_a_volume_only_it_mounts() -> None:
    pod = injection.desired_pod(POD, cache(SHARED, "shared", "team-a"), Policy())
    sidecar, app = pod["spec"]["containers"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == injection.SALT_VOLUME)
    assert volume["secret"] == {
        "secretName": "llmcache-shared-salt",
        "items": [{"key": "salt", "path": "salt"}],
        "optional": True,
    }
    assert {"name": "LLMCACHE_TENANT_SALT_FILE", "value": "/var/run/secrets/llmcache/tenant-salt/salt"} in sidecar[
        "env"
    ]
    assert any(m["name"] == injection.SALT_VOLUME for m in sidecar["volumeMounts"])
    assert not any(m["name"] == injection.SALT_VOLUME for m in app.get("volumeMounts", []))


def test_a_pinned_sidecar_image_gets_no_salt_it_may_not_know() -> None:
    pod = injection.desired_pod(POD, cache(MODELS, "models", "ml"), Policy())
    assert not any(v["name"] == injection.SALT_VOLUME for v in pod["spec"]["volumes"])
    assert "env" not in pod["spec"]["containers"][0]


def test_the_variable_the_operator_sets_is_the_sidecars_tenant_salt_file(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("namespace: team-a\n")
    settings = config.load(file, env={injection.SALT_ENV: "/var/run/secrets/llmcache/tenant-salt/salt"})
    assert settings.tenant_salt_file == "/var/run/secrets/llmcache/tenant-salt/salt"
    assert "tenantSaltFile" not in reconcile.config_text(cache(SHARED, "shared", "team-a"))
