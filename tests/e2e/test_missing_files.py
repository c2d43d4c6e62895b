"""The real `llmcache-sidecar` process when a file it needs is not there yet: it fails open.

In a pod the config comes from a ConfigMap volume and secrets from Secret volumes, all
`optional`: a Secret created after the pod, or deleted, leaves its file missing until
the kubelet fills it in. The sidecar must then pass every request through (the app's
calls still succeed), say so in `/readyz` and `/cache/stats`, and start caching once the
file appears. Real parts: the sidecar command, a password-protected redis-server, the
openai SDK; only the provider is our fake (tests/fakes/provider.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml

from tests.conftest import Upstream
from tests.realparts import free_port, redis

COMMAND = str(Path(sys.executable).with_name("llmcache-sidecar"))
PASSWORD = "correct horse battery staple"
POLLS = 100
"""Bounded waits: the sidecar polls its files every 2 s; 100 x 0.2 s leaves ample room."""


@dataclass
class Running:
    url: str
    admin_url: str
    stderr: bytes = b""

    async def ask(self, text: str) -> tuple[str | None, str]:
        """One chat call through the sidecar with the openai SDK: (Cache-Status, answer id)."""
        async with openai.AsyncOpenAI(base_url=f"{self.url}/openai/v1", api_key="sk-files", max_retries=0) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
            )
            return raw.headers.get("cache-status"), raw.parse().id

    async def admin(self, path: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.admin_url}{path}") as response:
            return response.status, await response.json()

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        for _ in range(POLLS):
            if await check():
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"never happened: {what}")


@asynccontextmanager
async def sidecar(log: Path, *args: str) -> AsyncIterator[Running]:
    """`llmcache-sidecar <args>` until the block ends (SIGTERM); its stderr goes to `log`."""
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(COMMAND, *args, stderr=sink)
        running = Running("", "")
        try:
            yield running
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    running.stderr = log.read_bytes()


def addresses() -> tuple[str, str]:
    return f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"


async def healthy(running: Running) -> None:
    async def answers() -> bool:
        try:
            status, _ = await running.admin("/healthz")
        except aiohttp.ClientError:
            return False
        return status == 200

    await running.until(answers, "the sidecar answers /healthz")


async def test_a_redis_password_file_that_appears_later_turns_caching_on(upstream: Upstream, tmp_path: Path) -> None:
    with redis(tmp_path, password=PASSWORD) as server:
        listen, admin = addresses()
        secret = tmp_path / "secret" / "password"  # the Secret volume, not filled yet
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "listen": listen,
                    "admin": admin,
                    "providers": {"openai": {"upstream": upstream.url}},
                    "backend": {"type": "redis", "redis": {"url": server.url, "passwordFile": str(secret)}},
                }
            )
        )
        async with sidecar(tmp_path / "sidecar.log", "--config", str(config)) as running:
            running.url, running.admin_url = f"http://{listen}", f"http://{admin}"
            await healthy(running)

            before = [await running.ask("what is fail-open?") for _ in range(2)]
            ready_before = await running.admin("/readyz")
            stats_before = (await running.admin("/cache/stats"))[1]

            secret.parent.mkdir()
            (secret.parent / ".tmp").write_text(PASSWORD + "\n")
            (secret.parent / ".tmp").rename(secret)  # appears at once, as the kubelet's symlink swap does

            statuses: list[str | None] = []

            async def a_repeat_is_a_hit() -> bool:
                statuses.append((await running.ask("what is caching?"))[0])
                return statuses[-1] == "llmcache; hit"

            await running.until(a_repeat_is_a_hit, "a repeated request is answered from Redis")
            ready_after = await running.admin("/readyz")

    # Before: answered by the provider every time, and the header says why it was not cached.
    assert [status for status, _ in before] == ["llmcache; fwd=bypass; detail=backend-unavailable"] * 2
    assert before[0][1] != before[1][1]  # two provider answers, nothing stored
    assert ready_before[0] == 503
    assert ready_before[1]["backend"] == "redis"
    assert ready_before[1]["error"] == (
        f"backend.redis.passwordFile: cannot read the secret file {secret}: No such file or directory"
    )
    assert stats_before["backend"]["unavailable"] == ready_before[1]["error"]
    assert stats_before["bypasses"] == 2
    # After: the real backend was built on a reload poll, with the password that Redis requires.
    assert "llmcache; fwd=miss; stored" in statuses
    assert ready_after == (200, {"status": "ready", "backend": "redis"})
    assert set(statuses[:-1]) <= {"llmcache; fwd=bypass; detail=backend-unavailable", "llmcache; fwd=miss; stored"}
    assert upstream.fake.count() == 2 + len(statuses) - 1  # every call but the hit reached the provider
    log = running.stderr.decode()
    assert "ERROR" in log and "cache backend redis cannot be built" in log
    assert "cache backend redis is built now: caching resumes" in log
    assert PASSWORD not in log
    assert "Traceback" not in log


async def test_an_injected_sidecar_without_its_config_file_passes_requests_through_until_it_appears(
    upstream: Upstream, tmp_path: Path
) -> None:
    """What the webhook's `--fallback-config` gives a pod whose ConfigMap is gone."""
    listen, admin = addresses()
    config = tmp_path / "config" / "config.yaml"  # the ConfigMap volume, empty
    config.parent.mkdir()
    fallback = json.dumps({"listen": listen, "admin": admin, "providers": {"openai": {"upstream": upstream.url}}})
    async with sidecar(tmp_path / "sidecar.log", "--config", str(config), "--fallback-config", fallback) as running:
        running.url, running.admin_url = f"http://{listen}", f"http://{admin}"
        await healthy(running)

        before = await running.ask("anyone there?")
        ready_before = await running.admin("/readyz")

        config.write_text(
            yaml.safe_dump({"listen": listen, "admin": admin, "providers": {"openai": {"upstream": upstream.url}}})
        )
        statuses: list[str | None] = []

        async def a_repeat_is_a_hit() -> bool:
            statuses.append((await running.ask("anyone there?"))[0])
            return statuses[-1] == "llmcache; hit"

        await running.until(a_repeat_is_a_hit, "the config file is loaded and a repeat is a hit")
        ready_after = await running.admin("/readyz")

    assert before[0] is None  # passed through untouched: caching is off
    assert ready_before == (
        503,
        {"status": "unavailable", "backend": "memory", "error": "no config file: caching is off"},
    )
    assert "llmcache; fwd=miss; stored" in statuses
    assert ready_after == (200, {"status": "ready", "backend": "memory"})
    log = running.stderr.decode()
    assert f"config file {config} does not exist: serving the --fallback-config settings" in log
    assert "Traceback" not in log
