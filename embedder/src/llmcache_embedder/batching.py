"""Micro-batching: requests that arrive while the encoder is busy are encoded together.

The encoder runs in one dedicated worker thread, never on the event loop. Requests
queue while it works, and the next batch takes as many as fit in `max_batch_texts`, so
concurrent small requests share a forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from llmcache_embedder.model import Encoder, TokenCounter, whitespace_token_count

log = logging.getLogger(__name__)


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[tuple[list[list[float]], list[int]]]


def encode_and_count(encoder: Encoder, texts: list[str]) -> tuple[list[list[float]], list[int]]:
    """Runs in the worker thread."""
    vectors = encoder.encode(texts)
    if len(vectors) != len(texts):
        raise RuntimeError(f"encoder returned {len(vectors)} vectors for {len(texts)} texts")
    if isinstance(encoder, TokenCounter):
        tokens = encoder.count_tokens(texts)
    else:
        tokens = [whitespace_token_count(t) for t in texts]
    return vectors, tokens


class Batcher:
    """Queues encode requests and runs them, batched, on one worker thread."""

    def __init__(self, encoder: Encoder, executor: ThreadPoolExecutor, max_batch_texts: int) -> None:
        self._encoder = encoder
        self._executor = executor
        self._max_batch_texts = max(1, max_batch_texts)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches_run = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="embedder-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))

    async def encode(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        fut: asyncio.Future[tuple[list[list[float]], list[int]]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(texts, fut))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else await self._queue.get()
            carry = None
            jobs = [first]
            n = len(first.texts)
            while not self._queue.empty():
                nxt = self._queue.get_nowait()
                if n + len(nxt.texts) > self._max_batch_texts:
                    carry = nxt
                    break
                jobs.append(nxt)
                n += len(nxt.texts)
            jobs = [j for j in jobs if not j.future.done()]  # drop cancelled clients
            if not jobs:
                continue
            flat = [t for j in jobs for t in j.texts]
            try:
                vectors, tokens = await loop.run_in_executor(self._executor, encode_and_count, self._encoder, flat)
            except Exception as exc:  # reported to every waiting request
                log.exception("encoding a batch of %d texts failed", len(flat))
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            self.batches_run += 1
            start = 0
            for j in jobs:
                end = start + len(j.texts)
                if not j.future.done():
                    j.future.set_result((vectors[start:end], tokens[start:end]))
                start = end
