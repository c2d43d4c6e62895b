"""Hot reload: a changed config file takes effect without a restart."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from llmcache_sidecar.server import reload
from tests.conftest import SidecarFactory, Upstream


async def test_a_changed_file_swaps_the_settings_and_keeps_an_unchanged_backend(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path
) -> None:
    sidecar = await make_sidecar()
    backend = sidecar.state.runtime.backend
    path = tmp_path / "config.yaml"
    path.write_text(f"ttl: 42\nflush: once\nproviders: {{openai: {{upstream: '{upstream.url}'}}}}\n")

    await reload.apply_file(sidecar.state, path)

    assert sidecar.state.runtime.settings.ttl == 42
    assert sidecar.state.runtime.backend is backend
    assert sidecar.state.runtime.flush_suffix  # a new flush value moves every key on


async def test_a_flush_value_in_the_config_empties_the_cache(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path
) -> None:
    sidecar = await make_sidecar()
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    path = tmp_path / "config.yaml"

    async def status() -> str:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{sidecar.url}/openai/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}
            ) as r:
                return r.headers["Cache-Status"]

    await status()
    await sidecar.state.drain(5)
    assert await status() == "llmcache; hit"
    path.write_text(f"flush: '2026-11-28T10:00'\nproviders: {{openai: {{upstream: '{upstream.url}'}}}}\n")
    await reload.apply_file(sidecar.state, path)
    assert (await status()).startswith("llmcache; fwd=miss")


async def test_an_invalid_file_keeps_the_running_config(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    sidecar = await make_sidecar(ttl=7)
    path = tmp_path / "config.yaml"
    path.write_text("ttl: never\n")
    await reload.apply_file(sidecar.state, path)
    assert sidecar.state.runtime.settings.ttl == 7


async def test_a_file_that_is_gone_turns_caching_off_but_requests_still_pass(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path
) -> None:
    sidecar = await make_sidecar()
    await reload.apply_file(sidecar.state, tmp_path / "missing.yaml")
    assert sidecar.state.runtime.caching is False
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sidecar.url}/openai/v1/chat/completions",
            json={"model": "m", "messages": []},
            headers={"Authorization": "Bearer k"},
        ) as resp:
            assert resp.status == 200
            assert "Cache-Status" not in resp.headers


async def test_the_watcher_notices_a_rewritten_file(upstream: Upstream, tmp_path: Path, aiohttp_server) -> None:
    from llmcache_sidecar import config
    from llmcache_sidecar.proxy.runtime import STATE
    from llmcache_sidecar.server.app import make_app

    path = tmp_path / "config.yaml"
    path.write_text("ttl: 10\n")
    app = make_app(config.load(path, env={}), config_path=path, reload_interval=0.05)
    await aiohttp_server(app)
    path.write_text("ttl: 20\n")
    for _ in range(100):
        if app[STATE].runtime.settings.ttl == 20:
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert app[STATE].runtime.settings.ttl == 20


async def test_new_rules_apply_on_reload_and_a_bad_one_keeps_the_running_rules(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path, caplog
) -> None:
    sidecar = await make_sidecar()
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    path = tmp_path / "config.yaml"
    providers = f"providers: {{openai: {{upstream: '{upstream.url}'}}}}\n"

    async def status() -> str:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{sidecar.url}/openai/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}
            ) as r:
                return r.headers["Cache-Status"]

    await status()
    await sidecar.state.drain(5)
    assert await status() == "llmcache; hit"  # the body's decision is remembered: the reload must forget it
    path.write_text(providers + "rules: [{when: 'model == \"m\"', action: bypass, reason: no-m}]\n")
    await reload.apply_file(sidecar.state, path)
    assert await status() == "llmcache; fwd=bypass; detail=no-m"
    path.write_text(providers + "rules: [{when: 'model = \"m\"', action: cache}]\n")
    await reload.apply_file(sidecar.state, path)
    assert await status() == "llmcache; fwd=bypass; detail=no-m"
    assert "rules[0].when: at 1:7: Syntax error" in caplog.text
