"""`make demo`: fully offline. A fake provider, the sidecar in front of it, and the
official openai SDK asking the same question twice: MISS, then HIT, with latencies.

The fake provider (tests/fakes/provider.py) answers after 400 ms, roughly what a short
completion takes from a real provider; the point is the difference a hit makes.
"""

from __future__ import annotations

import asyncio
import time

import openai
from aiohttp import web

from llmcache_sidecar import config
from llmcache_sidecar.proxy.runtime import STATE
from llmcache_sidecar.server.app import make_admin_app, make_app
from tests.fakes.provider import FAKE, make_fake_provider


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def main() -> None:
    provider_app = make_fake_provider()
    provider_app[FAKE].default_delay_ms = 400
    provider, provider_port = await _start(provider_app)
    settings = config.parse(
        config.Settings, {"providers": {"openai": {"upstream": f"http://127.0.0.1:{provider_port}"}}}
    )
    app = make_app(settings)
    sidecar, port = await _start(app)
    admin, admin_port = await _start(make_admin_app(app[STATE]))
    print(f"fake provider on 127.0.0.1:{provider_port}, sidecar on 127.0.0.1:{port}")
    print(f"client: OPENAI_BASE_URL=http://127.0.0.1:{port}/openai/v1\n")
    try:
        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/openai/v1", api_key="sk-demo") as client:
            for _ in range(2):
                started = time.perf_counter()
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "What does a cache do?"}]
                )
                took = (time.perf_counter() - started) * 1000
                answer = raw.parse()
                outcome = "HIT " if raw.headers["cache-status"].startswith("llmcache; hit") else "MISS"
                print(f"{outcome} {took:7.1f} ms  Cache-Status: {raw.headers['cache-status']}")
                print(f"             answer: {answer.choices[0].message.content!r}")
                await app[STATE].drain(5)
        print(f"\nprovider calls: {provider_app[FAKE].count()}  (stats: http://127.0.0.1:{admin_port}/cache/stats)")
    finally:
        for runner in (admin, sidecar, provider):
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
