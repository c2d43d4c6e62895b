"""`make bench` (last part): the sidecar's peak memory with one large cacheable answer.

For each case a fresh `llmcache-sidecar` process (memory backend) sits in front of a fake
provider that writes an embeddings answer of the given size as it sends it
(`tests/fakes/large_answers.py`). One request goes through, its answer is read to the end
and checked, and the sidecar's peak resident set (`VmHWM`) is compared with its resident
set before the request. Below `maxResponseBytes` the answer is recorded and stored (that
peak is what the default limit is sized by); above it, it streams through.

`--no-limit` leaves `maxResponseBytes` out of the config, for a sidecar that predates it
(the "before" figures of docs/security.md). A benchmark: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from tests.fakes.large_answers import CHAT, EMBEDDINGS, LargeAnswers, make_large_provider
from tests.realparts import free_port

MiB = 2**20
COMMAND = str(Path(sys.executable).with_name("llmcache-sidecar"))


def memory_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def one_case(
    path: str, size_mib: float, limit: int | None, content_length: bool, workdir: Path
) -> tuple[str, float, float]:
    # A provider writes a stream a few events at a time, a JSON answer in large pieces.
    chunk = 16 * 2**10 if path == CHAT else MiB
    answers = LargeAnswers(size=int(size_mib * MiB), content_length=content_length, chunk=chunk)
    runner = web.AppRunner(make_large_provider(answers), access_log=None)
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config: dict[str, object] = {
        "listen": listen,
        "admin": admin,
        "providers": {"openai": {"upstream": f"http://127.0.0.1:{upstream_port}"}},
        "telemetry": {"metrics": False},
    }
    if limit is not None:
        config["maxResponseBytes"] = limit
    file = workdir / "sidecar.yaml"
    file.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(COMMAND, "--config", str(file), stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                try:
                    async with http.get(f"http://{admin}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            idle, _ = memory_mib(proc.pid)
            received, digest = 0, hashlib.sha256()
            body: dict[str, object] = (
                {"model": "text-embedding-3-large", "input": ["x"] * 16}
                if path == EMBEDDINGS
                else {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
            )
            async with http.post(
                f"http://{listen}/openai{path}",
                json=body,
                headers={"Authorization": "Bearer sk-bench"},
                timeout=aiohttp.ClientTimeout(total=600),
            ) as r:
                status = r.headers.get("cache-status", "")
                async for chunk in r.content.iter_any():
                    received += len(chunk)
                    digest.update(chunk)
            await asyncio.sleep(1.0)  # the write after the answer
            _, peak = memory_mib(proc.pid)
        if (received, digest.hexdigest()) != answers.whole(path):
            status += " (ANSWER DIFFERS)"
        return status, idle, peak
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
        await runner.cleanup()


async def main(sizes: list[float], limit: int | None) -> None:
    print(f"maxResponseBytes: {limit if limit is not None else 'not set (a sidecar without it)'}")
    print("| answer | size | Content-Length | Cache-Status | idle RSS MiB | peak RSS MiB | peak - idle MiB |")
    print("|---|---:|---|---|---:|---:|---:|")
    cases = [(EMBEDDINGS, size, cl) for size in sizes for cl in (False, True)]
    cases += [(CHAT, size, False) for size in sizes]
    for path, size, content_length in cases:
        with tempfile.TemporaryDirectory(prefix="llmcache-bench-large-") as tmp:
            status, idle, peak = await one_case(path, size, limit, content_length, Path(tmp))
        kind = "embeddings JSON" if path == EMBEDDINGS else "chat stream (SSE)"
        sent = "yes" if content_length else "no"
        print(
            f"| {kind} | {size:g} MiB | {sent} | {status} | {idle:.1f} | {peak:.1f} | {peak - idle:+.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 3.5, 16, 150], help="answer sizes in MiB")
    parser.add_argument("--limit", type=int, default=4 * MiB, help="maxResponseBytes (default: 4 MiB, as at 64Mi)")
    parser.add_argument("--no-limit", action="store_true", help="leave maxResponseBytes out (an older sidecar)")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, None if args.no_limit else args.limit))
