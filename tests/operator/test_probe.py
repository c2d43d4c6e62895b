"""The backend probe against a real redis-server, a port where nothing listens, and a listener an
LLMCache's author controls (tests/operator/listener.py: it answers whatever it likes)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from llmcache_operator import probe
from llmcache_operator.spec import SecretKeyRef
from llmcache_sidecar.backends import BackendError
from tests.operator.listener import MARKER, listening
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
    assert found == "cannot connect (ECONNREFUSED: Connection refused)"


async def test_the_password_comes_from_the_referenced_secret(redis_with_password: RedisServer) -> None:
    backend = {
        "type": "redis",
        "redis": {"url": redis_with_password.url, "passwordSecretRef": {"name": "r", "key": "pw"}},
    }
    assert await problem({"backend": backend}, {("r", "pw"): "s3cret-for-tests"}) is None
    wrong = await problem({"backend": backend}, {("r", "pw"): "nope"})
    assert wrong == "the backend refused the credentials (AuthenticationError)"


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


# --- What the author of an LLMCache chooses: where the probe connects (issue 15, finding 2) --------


async def test_the_status_never_echoes_what_a_backend_answered() -> None:
    """A Redis that answers an error with the author's text: the message names the error's class only."""
    async with listening() as listener:
        found = await problem({"backend": {"type": "redis", "redis": {"url": listener.redis_url}}})
    assert listener.connections >= 1
    assert found == "the backend answered with an error (ResponseError)"
    assert MARKER not in found


async def test_the_status_never_echoes_a_reply_that_is_not_the_backends_protocol() -> None:
    """Garbage instead of RESP: redis-py quotes the bytes in its error; the status does not."""
    async with listening(reply=f"HTTP/1.1 200 OK\r\nX: {MARKER}\r\n\r\n".encode()) as listener:
        found = await problem({"backend": {"type": "redis", "redis": {"url": listener.redis_url}}})
    assert found is not None and MARKER not in found and "b'" not in found


async def test_an_s3_error_document_is_not_echoed_either() -> None:
    """The S3 client (aiobotocore) against an endpoint that answers an S3-style error naming the marker."""
    pytest.importorskip("aiobotocore")
    body = f"<Error><Code>AccessDenied</Code><Message>{MARKER}</Message></Error>".encode()
    head = f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    async with listening(reply=head.encode() + body) as listener:
        backend = {"type": "s3", "s3": {"bucket": "b", "endpointUrl": listener.http_url, "region": "us-east-1"}}
        found = await problem({"backend": backend})
    assert found is not None and MARKER not in found
    assert found.startswith(("the backend refused the credentials", "the backend answered with an error"))


def test_a_failure_is_described_by_classes_and_errno_names_only() -> None:
    class ResponseError(Exception):
        pass

    try:
        try:
            raise ResponseError(f"WRONGPASS {MARKER}")
        except ResponseError as inner:
            raise BackendError(str(inner)) from inner
    except BackendError as outer:
        assert probe.failure(outer, 5) == "the backend answered with an error (ResponseError)"
    assert probe.failure(TimeoutError(), 2.5) == "no answer within 2.5 s"
    refused = BackendError("x")
    refused.__cause__ = ConnectionRefusedError(111, f"refused by {MARKER}")
    assert probe.failure(refused, 5) == "cannot connect (ECONNREFUSED: Connection refused)"


async def test_a_failed_flush_does_not_echo_the_backends_reply_either() -> None:
    """The FlushDelayed event carries this message, and events are readable in the namespace."""
    async with listening() as listener:
        with pytest.raises(probe.FlushError) as caught:
            await probe.flush_shared(
                {"backend": {"type": "redis", "redis": {"url": listener.redis_url}}},
                name="c", namespace="team-a", read_secret=secrets({}), flush_timeout=5.0,
            )  # fmt: skip
    assert listener.connections >= 1
    assert str(caught.value) == "the backend answered with an error (ResponseError)"
