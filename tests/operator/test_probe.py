"""The backend probe against a real redis-server (and a port where nothing listens)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from llmcache_operator import probe
from llmcache_operator.spec import SecretKeyRef
from tests.realparts import RedisServer, free_port


def secrets(values: dict[tuple[str, str], str]) -> Any:
    async def read(ref: SecretKeyRef) -> str | None:
        return values.get((ref.name, ref.key))

    return read


async def problem(raw: dict[str, Any], values: dict[tuple[str, str], str] | None = None) -> str | None:
    """None when the backend answered, else the probe's message."""
    check = await probe.check_backend(
        raw, name="c", namespace="team-a", read_secret=secrets(values or {}), ping_timeout=5.0
    )
    assert check.reachable is not None, check.message
    return None if check.reachable else check.message


async def test_a_memory_backend_always_answers() -> None:
    assert await problem({}) is None


async def test_a_running_redis_answers(redis_server: RedisServer) -> None:
    assert await problem({"backend": {"type": "redis", "redis": {"url": redis_server.url}}}) is None


async def test_a_dual_backend_is_as_reachable_as_its_redis(redis_server: RedisServer) -> None:
    assert await problem({"backend": {"type": "dual", "redis": {"url": redis_server.url}}}) is None


async def test_nothing_listening_is_reported_as_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    found = await problem({"backend": {"type": "redis", "redis": {"url": url}}})
    assert found is not None
    assert "Connection refused" in found or "connecting" in found


async def test_the_password_comes_from_the_referenced_secret(redis_with_password: RedisServer) -> None:
    backend = {
        "type": "redis",
        "redis": {"url": redis_with_password.url, "passwordSecretRef": {"name": "r", "key": "pw"}},
    }
    assert await problem({"backend": backend}, {("r", "pw"): "s3cret-for-tests"}) is None
    wrong = await problem({"backend": backend}, {("r", "pw"): "nope"})
    assert wrong is not None and ("WRONGPASS" in wrong or "invalid" in wrong.lower())


async def test_a_missing_secret_is_reported_by_name() -> None:
    backend = {
        "type": "redis",
        "redis": {"url": "redis://127.0.0.1:1/0", "passwordSecretRef": {"name": "r", "key": "pw"}},
    }
    assert await problem({"backend": backend}) == "Secret 'r' (key 'pw') not found in team-a"


async def test_a_disk_backend_lives_in_each_pod_and_is_not_probed_from_the_operator() -> None:
    check = await probe.check_backend(
        {"backend": {"type": "dual", "dual": {"l2": "disk"}}}, name="c", namespace="n",
        read_secret=secrets({}), ping_timeout=1.0,
    )  # fmt: skip
    assert (check.reachable, check.message) == (True, "The dual backend lives in each pod.")


async def test_an_s3_bucket_is_reported_as_not_checked_without_its_client_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in the operator image, which has no S3 client: the backend module cannot be imported.
    monkeypatch.setitem(sys.modules, "llmcache_sidecar.backends.s3", None)
    check = await probe.check_backend(
        {"backend": {"type": "s3", "s3": {"bucket": "b"}}}, name="c", namespace="n",
        read_secret=secrets({}), ping_timeout=1.0,
    )  # fmt: skip
    assert check.reachable is None
    assert check.message.startswith("The operator cannot check the s3 backend: ")
