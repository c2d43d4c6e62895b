"""A local fake LLM provider speaking the real wire formats of OpenAI, Azure OpenAI, Anthropic and Gemini.

The official SDKs work against it unchanged. Every answer carries a serial number that grows
with each upstream call (``chatcmpl-fake-<n>``, ``msg_fake_<n>``, ``Echo #<n>: ...``, and the
``x-fake-serial`` header), so a test can tell a provider answer from a cached one.

Knobs, per request by header or queued on the state with ``fake.plan(Behaviour(...))``
(headers win over the plan, the plan over ``fake.default_delay_ms`` and friends):

- ``x-fake-status: 429``        answer that status with the provider's error JSON
- ``x-fake-delay-ms: 200``      wait before the response starts
- ``x-fake-chunk-delay-ms: 20`` wait between SSE events
- ``x-fake-cut-after: N``       stream: send N events, then drop the connection
- ``x-fake-error-event: N``     stream: send N events, then the provider's error event
- ``x-fake-hang-up: 1``         close the connection without answering

A provider that fails on demand, for the stale-if-error tests: ``fake.plan(Behaviour(status=500))``
(or 429, 529, 400...), ``Behaviour(delay_ms=...)`` beyond the sidecar's provider timeout, or
``Behaviour(hang_up=1)``; a refused connection is a fake that is no longer listening.

A test can also choose what the chat endpoints answer: ``fake.reply_rule`` maps a
request body to the answer's text (or None for the echo), which is how
``tests/semantic/test_judge.py`` plays an LLM judge.

Run it alone with ``python -m tests.fakes.provider --port 0 --host 127.0.0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiohttp import web
from aiohttp.typedefs import Handler

from . import provider_anthropic, provider_gemini, provider_openai, provider_responses
from .provider_core import (
    FAKE,
    KNOB_HEADERS,
    SERIAL_HEADER,
    Behaviour,
    FakeProvider,
    Received,
)

__all__ = [
    "FAKE",
    "KNOB_HEADERS",
    "SERIAL_HEADER",
    "Behaviour",
    "FakeProvider",
    "Received",
    "make_fake_provider",
]


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every request that reaches the fake, before anything can refuse it."""
    body = await request.read()
    headers = {name.lower(): value for name, value in request.headers.items()}
    request.app[FAKE].record(
        Received(request.method, request.path, dict(request.query), headers, body, request.raw_path)
    )
    return await handler(request)


def make_fake_provider(fake: FakeProvider | None = None) -> web.Application:
    app = web.Application(middlewares=[record])
    app[FAKE] = fake if fake is not None else FakeProvider()
    app.add_routes(
        [
            *provider_openai.routes(),
            *provider_responses.routes(),
            *provider_anthropic.routes(),
            *provider_gemini.routes(),
        ]
    )
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_fake_provider(FakeProvider(keep_last=1000)))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        print(f"listening on http://{host}:{bound_port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
