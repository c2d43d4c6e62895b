"""A provider whose answers are as large as a test asks: embeddings JSON or a chat stream, made as sent.

An embeddings answer for 2,048 inputs of 3,072 dimensions is about 150 MiB of JSON; this
fake writes one of any size chunk by chunk, never holding it whole (so that the test's own
memory does not blur what it measures), with or without a Content-Length. The bytes are
the same on every call, so that a test can check the caller got all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

EMBEDDINGS = "/v1/embeddings"
CHAT = "/v1/chat/completions"
_VECTOR = "[" + ",".join(f"{(i % 997) / 1000 - 0.5:.7f}" for i in range(3072)) + "]"
_ITEM = ('{"object":"embedding","index":0,"embedding":' + _VECTOR + "}").encode()
DELTA = "la la la "
"""What every event of the chat stream adds: events as small as the providers' (about 190 bytes)."""
_EVENT = (
    b'data: {"id":"chatcmpl-large","object":"chat.completion.chunk","model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":"' + DELTA.encode() + b'"},"finish_reason":null}]}\n\n'
)


@dataclass
class LargeAnswers:
    """What the fake answers: about `size` bytes (a whole number of items), in `chunk`-byte writes."""

    size: int
    content_length: bool = True
    chunk: int = 2**20
    delay_ms: int = 0
    calls: int = 0

    @property
    def items(self) -> int:
        """Embeddings in the answer."""
        return max(1, self.size // (len(_ITEM) + 1))

    @property
    def events(self) -> int:
        """Chunks in the stream, before its `[DONE]`."""
        return max(1, self.size // len(_EVENT))

    def embeddings(self) -> Iterator[bytes]:
        count = self.items
        yield b'{"object":"list","data":['
        for i in range(count):
            yield _ITEM if i == 0 else b"," + _ITEM
        yield b'],"model":"text-embedding-3-large","usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (count, count)

    def chat_stream(self) -> Iterator[bytes]:
        for _ in range(self.events):
            yield _EVENT
        yield b"data: [DONE]\n\n"

    def whole(self, path: str) -> tuple[int, str]:
        """(length, sha256) of the answer at `path`, computed without holding it."""
        digest, length = hashlib.sha256(), 0
        for part in self._parts(path):
            digest.update(part)
            length += len(part)
        return length, digest.hexdigest()

    def _parts(self, path: str) -> Iterator[bytes]:
        return self.chat_stream() if path == CHAT else self.embeddings()


def make_large_provider(answers: LargeAnswers) -> web.Application:
    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        answers.calls += 1
        if answers.delay_ms:
            await asyncio.sleep(answers.delay_ms / 1000)
        path = request.path
        stream = path == CHAT
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        if answers.content_length and not stream:
            response.content_length = answers.whole(path)[0]
        await response.prepare(request)
        pending = bytearray()
        for part in answers._parts(path):
            pending += part
            if len(pending) >= answers.chunk:
                await response.write(bytes(pending))
                pending.clear()
        if pending:
            await response.write(bytes(pending))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(EMBEDDINGS, answer)
    app.router.add_post(CHAT, answer)
    return app
