"""OpenAI-compatible embeddings server.

Endpoints:

* ``POST /v1/embeddings`` - body ``{"input": str | [str, ...], "model": str,
  "encoding_format": "float" | "base64", "dimensions": int}``; the reply has
  OpenAI's shape: ``{"object": "list", "data": [{"object": "embedding",
  "index": i, "embedding": [...] | "<base64 float32 LE>"}], "model": ...,
  "usage": {"prompt_tokens": n, "total_tokens": n}}``.
* ``GET /v1/models`` and ``GET /v1/models/{id}`` - the one model served.
* ``GET /healthz`` - 200 once the model is loaded, 503 while loading or failed.

The encoder runs in one dedicated worker thread, never on the event loop.
Requests that arrive while the worker is busy are queued and then encoded
together in one batch (micro-batching), so concurrent small requests share a
forward pass.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmcache_embedder.model import (
    MINILM_MODEL_NAME,
    Encoder,
    HashEncoder,
    MiniLMEncoder,
    TokenCounter,
    whitespace_token_count,
)

log = logging.getLogger("llmcache_embedder")

EncoderFactory = Callable[[], Encoder]

DEFAULT_MAX_BATCH_TEXTS = 64
DEFAULT_MAX_INPUTS = 2048
DEFAULT_MAX_INPUT_CHARS = 32_768
DEFAULT_CLIENT_MAX_SIZE = 16 * 1024 * 1024


class ApiError(Exception):
    """An error reported to the client in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def response(self) -> web.Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return web.json_response(body, status=self.status)


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[tuple[list[list[float]], list[int]]]


def _encode_and_count(encoder: Encoder, texts: list[str]) -> tuple[list[list[float]], list[int]]:
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
                vectors, tokens = await loop.run_in_executor(self._executor, _encode_and_count, self._encoder, flat)
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


@dataclass
class ServerState:
    model_name: str
    encoder_factory: EncoderFactory
    max_batch_texts: int
    max_inputs: int
    max_input_chars: int
    created: int = field(default_factory=lambda: int(time.time()))
    encoder: Encoder | None = None
    dimensions: int | None = None
    batcher: Batcher | None = None
    executor: ThreadPoolExecutor | None = None
    ready: asyncio.Future[None] | None = None
    load_seconds: float | None = None


STATE = web.AppKey("llmcache_embedder_state", ServerState)


def _load(factory: EncoderFactory) -> tuple[Encoder, int, float]:
    """Runs in the worker thread: build the encoder and warm it up once."""
    t0 = time.perf_counter()
    encoder = factory()
    probe = encoder.encode(["warm-up"])
    if len(probe) != 1 or not probe[0]:
        raise RuntimeError("encoder returned no vector for the warm-up text")
    return encoder, len(probe[0]), time.perf_counter() - t0


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    loop = asyncio.get_running_loop()
    state.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
    state.ready = loop.create_future()

    async def load() -> None:
        assert state.executor is not None and state.ready is not None
        try:
            encoder, dim, secs = await loop.run_in_executor(state.executor, _load, state.encoder_factory)
        except Exception as exc:
            log.exception("loading the encoder failed")
            state.ready.set_exception(exc)
            return
        state.encoder, state.dimensions, state.load_seconds = encoder, dim, secs
        state.batcher = Batcher(encoder, state.executor, state.max_batch_texts)
        state.batcher.start()
        log.info("model %s ready: %d dimensions, loaded in %.2fs", state.model_name, dim, secs)
        state.ready.set_result(None)

    load_task = loop.create_task(load(), name="embedder-load")
    yield
    load_task.cancel()
    if state.ready is not None and state.ready.done() and not state.ready.cancelled():
        state.ready.exception()  # mark a load failure as retrieved
    if state.batcher is not None:
        await state.batcher.close()
    state.executor.shutdown(wait=False, cancel_futures=True)


async def _wait_ready(state: ServerState) -> Batcher:
    assert state.ready is not None
    try:
        await asyncio.shield(state.ready)
    except Exception as exc:
        raise ApiError(503, f"model failed to load: {exc}", type_="server_error", code="model_unavailable") from exc
    assert state.batcher is not None
    return state.batcher


def _parse_input(raw: Any, max_inputs: int, max_chars: int) -> list[str]:
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        if not raw:
            raise ApiError(400, "'input' must not be an empty list", param="input")
        if all(isinstance(x, str) for x in raw):
            texts = list(raw)
        elif all(isinstance(x, int) for x in raw) or all(isinstance(x, list) for x in raw):
            raise ApiError(
                400,
                "token-array inputs are not supported by this server; send strings",
                param="input",
            )
        else:
            raise ApiError(400, "'input' must be a string or a list of strings", param="input")
    elif raw is None:
        raise ApiError(400, "you must provide an 'input' parameter", param="input")
    else:
        raise ApiError(400, "'input' must be a string or a list of strings", param="input")
    if len(texts) > max_inputs:
        raise ApiError(400, f"at most {max_inputs} inputs per request", param="input")
    for i, t in enumerate(texts):
        if not t:
            raise ApiError(400, f"input[{i}] is an empty string", param="input")
        if len(t) > max_chars:
            raise ApiError(400, f"input[{i}] is longer than {max_chars} characters", param="input")
    return texts


def _b64_float32(vec: Sequence[float]) -> str:
    buf = array.array("f", vec)
    if sys.byteorder != "little":
        buf.byteswap()
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _to_float32(vec: Sequence[float]) -> list[float]:
    # Same precision as the base64 path, so both formats agree.
    return array.array("f", vec).tolist()


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "you must provide a 'model' parameter", param="model")
        if model != state.model_name:
            raise ApiError(
                404,
                f"The model '{model}' does not exist; this server serves '{state.model_name}'",
                param="model",
                code="model_not_found",
            )
        fmt = body.get("encoding_format")
        if fmt is None:
            fmt = "float"
        if fmt not in ("float", "base64"):
            raise ApiError(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
        texts = _parse_input(body.get("input"), state.max_inputs, state.max_input_chars)
        batcher = await _wait_ready(state)
        dims = body.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims != state.dimensions):
            raise ApiError(
                400,
                f"'dimensions' must be {state.dimensions} for this model (it cannot be shortened)",
                param="dimensions",
            )
        try:
            vectors, tokens = await batcher.encode(texts)
        except Exception as exc:
            raise ApiError(500, f"encoding failed: {exc}", type_="server_error") from exc
    except ApiError as err:
        return err.response()

    encode = _b64_float32 if fmt == "base64" else _to_float32
    data = [{"object": "embedding", "index": i, "embedding": encode(vec)} for i, vec in enumerate(vectors)]
    n_tokens = sum(tokens)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": state.model_name,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }
    )


def _model_card(state: ServerState) -> dict[str, Any]:
    return {"id": state.model_name, "object": "model", "created": state.created, "owned_by": "llmcache"}


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"object": "list", "data": [_model_card(state)]})


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.match_info["model"] != state.model_name:
        return ApiError(
            404, f"The model '{request.match_info['model']}' does not exist", param="model", code="model_not_found"
        ).response()
    return web.json_response(_model_card(state))


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ready = state.ready
    if ready is None or not ready.done():
        return web.json_response({"status": "loading", "model": state.model_name}, status=503)
    if ready.exception() is not None:
        return web.json_response(
            {"status": "error", "model": state.model_name, "error": str(ready.exception())}, status=503
        )
    return web.json_response(
        {
            "status": "ok",
            "model": state.model_name,
            "dimensions": state.dimensions,
            "load_seconds": state.load_seconds,
        }
    )


def create_app(
    encoder_factory: EncoderFactory,
    model_name: str,
    *,
    max_batch_texts: int = DEFAULT_MAX_BATCH_TEXTS,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
) -> web.Application:
    """Build the app. ``encoder_factory`` is called once, in the worker thread, at startup."""
    app = web.Application(client_max_size=client_max_size)
    app[STATE] = ServerState(
        model_name=model_name,
        encoder_factory=encoder_factory,
        max_batch_texts=max_batch_texts,
        max_inputs=max_inputs,
        max_input_chars=max_input_chars,
    )
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", healthz)
    return app


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmcache-embedder", description="OpenAI-compatible embeddings server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--encoder",
        choices=("minilm", "hash"),
        default="minilm",
        help="minilm: all-MiniLM-L6-v2 (needs the 'minilm' extra); hash: deterministic test encoder",
    )
    p.add_argument("--model-name", default=None, help="model id clients must send (default depends on --encoder)")
    p.add_argument("--hash-dimensions", type=int, default=64)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a small shared CPU, 2+ threads spin and get slower; "
        "0 keeps torch's own default)",
    )
    p.add_argument("--max-batch-texts", type=int, default=DEFAULT_MAX_BATCH_TEXTS)
    p.add_argument("--max-inputs", type=int, default=DEFAULT_MAX_INPUTS)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    factory: EncoderFactory
    if args.encoder == "hash":
        dims: int = args.hash_dimensions
        factory = lambda: HashEncoder(dims)  # noqa: E731
        name = args.model_name or f"hash-bow-{dims}"
    else:
        threads: int | None = args.threads if args.threads > 0 else None
        factory = lambda: MiniLMEncoder(num_threads=threads)  # noqa: E731
        name = args.model_name or MINILM_MODEL_NAME
    app = create_app(factory, name, max_batch_texts=args.max_batch_texts, max_inputs=args.max_inputs)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
