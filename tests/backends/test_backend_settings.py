"""Backend blocks of the configuration: what a user writes, and the errors they get."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from llmcache_sidecar import config
from llmcache_sidecar.backends import build_backend
from llmcache_sidecar.backends.disk import DiskCache
from llmcache_sidecar.backends.dual import DualCache
from llmcache_sidecar.backends.failopen import FailOpen
from llmcache_sidecar.backends.memory import MemoryCache
from llmcache_sidecar.backends.objects import ObjectCache
from llmcache_sidecar.backends.redis import RedisCache


def parse(data: dict[str, Any]) -> config.BackendSettings:
    return config.parse(config.Settings, {"backend": data}).backend


def test_sentinel_needs_at_least_one_address() -> None:
    with pytest.raises(config.ConfigError, match=r"backend\.redis\.sentinel\.addresses"):
        parse({"type": "redis", "redis": {"sentinel": {"masterName": "m", "addresses": []}}})


def test_a_sentinel_address_must_be_host_and_port() -> None:
    with pytest.raises(config.ConfigError, match=r"addresses\[0\]"):
        parse({"type": "redis", "redis": {"sentinel": {"addresses": ["sentinel-0"]}}})


def test_cluster_and_sentinel_cannot_both_be_set() -> None:
    with pytest.raises(config.ConfigError, match="exclude each other"):
        parse({"type": "redis", "redis": {"cluster": True, "sentinel": {"addresses": ["s:26379"]}}})


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"type": "s3"}, "backend.s3.bucket"),
        ({"type": "gcs"}, "backend.gcs.bucket"),
        ({"type": "azureBlob"}, "backend.azureBlob.container"),
        ({"type": "azureBlob", "azureBlob": {"container": "c"}}, "backend.azureBlob.accountUrl"),
        ({"type": "dual", "dual": {"l2": "s3"}}, "backend.s3.bucket"),
        ({"type": "s3", "s3": {"bucket": "b", "accessKeyIdFile": "/k"}}, "backend.s3.secretAccessKeyFile"),
    ],
)
def test_a_missing_required_setting_names_its_key(data: dict[str, Any], path: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        parse(data)
    assert err.value.path == path


def test_dual_takes_memory_in_front_of_any_remote_tier(tmp_path: Path) -> None:
    for l2, block in [
        ("redis", {}),
        ("s3", {"s3": {"bucket": "b"}}),
        ("gcs", {"gcs": {"bucket": "b"}}),
        (
            "azureBlob",
            {
                "azureBlob": {
                    "container": "c",
                    "accountUrl": "https://acct.blob.core.windows.net",
                    "accountKeyFile": str(_secret(tmp_path, "a2V5")),
                }
            },
        ),
        ("disk", {"disk": {"path": str(tmp_path / "d")}}),
    ]:
        backend = build_backend(parse({"type": "dual", "dual": {"l2": l2}, **block}))
        assert isinstance(backend, DualCache)
        assert isinstance(backend.front, MemoryCache)
        assert isinstance(backend.back, FailOpen)
        assert backend.back.name == l2


def test_each_type_builds_its_backend_behind_fail_open(tmp_path: Path) -> None:
    expected = {"redis": RedisCache, "s3": ObjectCache, "disk": DiskCache}
    blocks = {"s3": {"s3": {"bucket": "b"}}, "disk": {"disk": {"path": str(tmp_path)}}}
    for kind, cls in expected.items():
        backend = build_backend(parse({"type": kind, **blocks.get(kind, {})}))
        assert isinstance(backend, FailOpen)
        assert isinstance(backend.inner, cls)


def test_a_missing_extra_is_a_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiobotocore.session", None)
    monkeypatch.delitem(sys.modules, "llmcache_sidecar.backends.s3", raising=False)
    with pytest.raises(config.ConfigError, match=r"llmcache-sidecar\[s3\]"):
        build_backend(parse({"type": "s3", "s3": {"bucket": "b"}}))


def test_the_crd_schema_lists_every_backend_type() -> None:

    props = config.object_schema(config.BackendSettings)["properties"]
    assert set(props["type"]["enum"]) == {"memory", "redis", "dual", "s3", "gcs", "azureBlob", "disk"}
    assert props["dual"]["properties"]["l2"]["enum"] == ["redis", "s3", "gcs", "azureBlob", "disk"]
    assert props["redis"]["properties"]["sentinel"]["nullable"] is True


def _secret(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secret"
    path.write_text(text + "\n")
    return path
