"""Asking the sidecar a chat question through the official SDKs, and reading what the cache did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai

from tests.conftest import Sidecar


@dataclass
class Answer:
    text: str
    status: str
    similarity: str | None
    key: str


async def ask(
    sidecar: Sidecar,
    question: str,
    *,
    api_key: str = "sk-a",
    model: str = "gpt-4o-mini",
    system: str | None = None,
    history: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
    stream: bool = False,
    drain: bool = True,
    **params: Any,
) -> Answer:
    """One chat completion through the openai SDK; waits for the cache write unless `drain=False`."""
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    for user, assistant in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": question})
    async with openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key=api_key, max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=messages, stream=stream, extra_headers=headers or {}, **params
        )
        result: Any = raw.parse()
        if stream:
            parts = []
            async for chunk in result:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
            text = "".join(parts)
        else:
            text = result.choices[0].message.content or ""
    if drain:
        await sidecar.state.drain(5)
    return Answer(
        text, raw.headers["cache-status"], raw.headers.get("x-llmcache-similarity"), raw.headers["x-llmcache-key"]
    )


async def stats(sidecar: Sidecar) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/cache/stats") as resp:
        body: dict[str, Any] = await resp.json()
        return body["semantic"]  # type: ignore[no-any-return]


SEMANTIC_HIT = "llmcache; hit; detail=semantic"
