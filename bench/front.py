"""What transparent mode's front costs reverse-proxy hits: the same sidecar with it off and on.

    python bench/front.py [--rounds 3] [--requests 2000]

Starts the fake provider and two sidecars (`llmcache-sidecar --config`, memory backend): one
plain, one with `transparent.enabled` (its data port then runs behind `transparent.Front`).
Warms one entry in each, then times cache hits on `/openai/v1/chat/completions`, alternating
between the two, in three shapes: one keep-alive connection, a new connection per request,
and 16 keep-alive connections at once. Prints medians per shape. Numbers, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import trustme

REPO = Path(__file__).resolve().parents[1]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "bench"}]}
HEADERS = {"Authorization": "Bearer sk-bench"}


async def start(cmd: list[str], ready: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"{cmd} exited")
            if ready in line:
                return proc, line


async def _start_quiet(cfg: Path) -> tuple[asyncio.subprocess.Process, str]:
    return await start([sys.executable, "-m", "llmcache_sidecar.cli", "--config", str(cfg)], "data on")


async def hit(session: aiohttp.ClientSession, url: str) -> float:
    t = time.perf_counter()
    async with session.post(url, json=BODY, headers=HEADERS) as r:
        await r.read()
        assert r.headers.get("Cache-Status") == "llmcache; hit", r.headers.get("Cache-Status")
    return time.perf_counter() - t


async def sequential(url: str, n: int, *, new_connections: bool) -> float:
    connector = aiohttp.TCPConnector(force_close=new_connections, limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        times = [await hit(session, url) for _ in range(n)]
    return statistics.median(times) * 1e6


async def concurrent(url: str, n: int, width: int = 16) -> float:
    connector = aiohttp.TCPConnector(limit=width)
    async with aiohttp.ClientSession(connector=connector) as session:
        t = time.perf_counter()
        for _ in range(n // width):
            await asyncio.gather(*(hit(session, url) for _ in range(width)))
        return (n // width * width) / (time.perf_counter() - t)


async def main(rounds: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp / "ca.crt"))
        ca.private_key_pem.write_to_path(str(tmp / "ca.key"))
        fake, line = await start([sys.executable, "-m", "tests.fakes.provider", "--port", "0"], "listening on")
        upstream = line.split("listening on ")[1].strip()
        plain, _ = await _start_quiet_cfg(tmp, "plain", 18787, upstream, transparent=False)
        front, _ = await _start_quiet_cfg(tmp, "front", 18797, upstream, transparent=True)
        urls = {"off": "http://127.0.0.1:18787/openai/v1/chat/completions",
                "on": "http://127.0.0.1:18797/openai/v1/chat/completions"}  # fmt: skip
        try:
            async with aiohttp.ClientSession() as s:
                for url in urls.values():
                    async with s.post(url, json=BODY, headers=HEADERS) as r:
                        await r.read()
            results: dict[str, dict[str, list[float]]] = {
                k: {"keepalive_us": [], "newconn_us": [], "rps16": []} for k in urls
            }
            for i in range(rounds):
                order = list(urls.items()) if i % 2 == 0 else list(reversed(urls.items()))
                for mode, url in order:  # alternate who goes first
                    results[mode]["keepalive_us"].append(await sequential(url, n, new_connections=False))
                    results[mode]["newconn_us"].append(await sequential(url, n // 2, new_connections=True))
                    results[mode]["rps16"].append(await concurrent(url, n))
            for mode, shapes in results.items():
                summary = ", ".join(f"{k}={statistics.median(v):.0f}" for k, v in shapes.items())
                print(f"transparent {mode:3}: {summary}")
        finally:
            for proc in (plain, front, fake):
                proc.terminate()
                await proc.wait()


async def _start_quiet_cfg(
    tmp: Path, name: str, port: int, upstream: str, *, transparent: bool
) -> tuple[asyncio.subprocess.Process, str]:
    settings: dict[str, object] = {
        "listen": f"127.0.0.1:{port}",
        "admin": f"127.0.0.1:{port + 1}",
        "providers": {"openai": {"upstream": upstream}},
    }
    if transparent:
        settings["transparent"] = {"enabled": True, "caCertFile": str(tmp / "ca.crt"), "caKeyFile": str(tmp / "ca.key")}
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(json.dumps(settings))
    return await _start_quiet(cfg)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
