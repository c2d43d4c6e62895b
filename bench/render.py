"""`make bench` (and `python -m bench.render`): what deciding and rendering a hit costs, in-process.

- the decision every hit now makes: is the entry fresh (`freshness.judge`), and is it
  in the delivery the caller asked for (`render.fit` returning it as it is);
- a rendering, per API and answer size: a stored JSON answer as a stream, a stored
  stream as a JSON answer, and a chat stream without its usage chunk.

Answers come from the fake provider's builders (tests/fakes), the text repeated to the
size named. CPU time per call, best of several rounds; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import orjson

from llmcache_sidecar.entry import CachedResponse, Usage
from llmcache_sidecar.wire import freshness, render
from llmcache_sidecar.wire.controls import RequestControls
from llmcache_sidecar.wire.render import Shape, anthropic, chat, responses
from tests.fakes import provider_anthropic, provider_openai, provider_responses
from tests.fakes.provider_core import Call, FakeProvider, Stream


def per_call(fn: Callable[[], Any], rounds: int = 5, budget: float = 0.2) -> float:
    """Microseconds per call: the best of `rounds`, each about `budget` seconds long."""
    n = 1
    while True:
        started = time.process_time()
        for _ in range(n):
            fn()
        if time.process_time() - started > budget / 10:
            break
        n *= 4
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - started) / n)
    return best * 1e6


def built(builder: Any, body: dict[str, Any], words: int) -> bytes:
    fake = FakeProvider(reply_rule=lambda _: " ".join(["lorem"] * words))
    reply = builder(Call(body, 1, {}, {}, fake))
    if isinstance(reply, Stream):
        return b"".join(event.encode("\n") for event in reply.events)
    return orjson.dumps(reply)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--words", type=int, nargs="*", default=[50, 1000], help="answer sizes, in words")
    args = parser.parse_args(argv)

    entry = CachedResponse(200, (("content-type", "application/json"),), b"{}", time.time(), ttl=3600.0)
    ctl = RequestControls()
    shape = Shape(False, "chat")
    decide = per_call(lambda: render.fit(entry, shape) if freshness.judge(entry, ctl, time.time(), 0.0) else None)
    print("| step | µs per call |\n|---|---|")
    print(f"| a hit's decision (fresh? right delivery?), as-is entry | {decide:.2f} |")

    print("\n| rendering | answer | bytes in | µs per call |\n|---|---|---|---|")
    messages = [{"role": "user", "content": "bench"}]
    for words in args.words:
        chat_body = {"model": "m", "messages": messages}
        chat_json = built(provider_openai.chat_completions, chat_body, words)
        chat_sse = built(
            provider_openai.chat_completions,
            {**chat_body, "stream": True, "stream_options": {"include_usage": True}},
            words,
        )
        # the fake's Responses and Anthropic builders echo the prompt: make it the size asked
        long_input = " ".join(["lorem"] * words)
        resp_json = built(provider_responses.responses, {"model": "m", "input": long_input}, words)
        resp_sse = built(provider_responses.responses, {"model": "m", "input": long_input, "stream": True}, words)
        claude_body = {"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": long_input}]}
        claude_json = built(provider_anthropic.messages, claude_body, words)
        claude_sse = built(provider_anthropic.messages, {**claude_body, "stream": True}, words)
        cases = [
            ("chat JSON -> stream", chat_json, lambda b=chat_json: chat.to_stream(b, True)),
            ("chat stream -> JSON", chat_sse, lambda b=chat_sse: chat.to_json(b)),
            ("chat stream less its usage chunk", chat_sse, lambda b=chat_sse: chat.drop_usage(b)),
            ("responses JSON -> stream", resp_json, lambda b=resp_json: responses.to_stream(b)),
            ("responses stream -> JSON", resp_sse, lambda b=resp_sse: responses.to_json(b)),
            ("anthropic JSON -> stream", claude_json, lambda b=claude_json: anthropic.to_stream(b)),
            ("anthropic stream -> JSON", claude_sse, lambda b=claude_sse: anthropic.to_json(b)),
        ]
        for name, data, fn in cases:
            print(f"| {name} | {words} words | {len(data):,} | {per_call(fn):.1f} |")
    usage_entry = CachedResponse(200, (), chat_sse, time.time(), True, usage=Usage(1, 1), ttl=3600.0)
    fit_render = per_call(lambda: render.fit(usage_entry, Shape(False, "chat")))
    print(f"\nfit() of a {len(chat_sse):,}-byte chat stream for a plain caller: {fit_render:.1f} µs")


if __name__ == "__main__":
    main()
