"""The floor for a Redis-backed cache in Python: hash the raw body, one Redis GET, answer.

No parsing, no canonical key, no tenant, no headers: what the issue compares the
sidecar's Redis hit against. Run by bench/sidecar.py. Its GET has a 50 ms socket timeout,
as a cache's remote call should; `--socket-timeout 0` drops it (redis-py then skips the
`asyncio.wait_for` it puts around each write), the leanest floor redis-py allows.
"""

from __future__ import annotations

import argparse
import hashlib

import redis.asyncio as aioredis
from aiohttp import web

CANNED = b'{"id":"chatcmpl-baseline","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Spring and autumn."},"finish_reason":"stop"}]}'
REDIS = web.AppKey("redis", aioredis.Redis)


async def answer(request: web.Request) -> web.Response:
    client = request.app[REDIS]
    key = hashlib.sha256(await request.read()).hexdigest()
    value = await client.get(key)
    if value is None:
        await client.set(key, CANNED)
        value = CANNED
    return web.Response(body=value, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--socket-timeout", type=float, default=0.05, help="seconds; 0 for none")
    args = parser.parse_args()
    app = web.Application()
    app[REDIS] = aioredis.Redis.from_url(args.redis, socket_timeout=args.socket_timeout or None)
    app.router.add_post("/{path:.*}", answer)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
