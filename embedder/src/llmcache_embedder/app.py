"""OpenAI-compatible embeddings server: the aiohttp app.

Endpoints:

* ``POST /v1/embeddings`` - body ``{"input": str | [str, ...], "model": str,
  "encoding_format": "float" | "base64", "dimensions": int}``; the reply has
  OpenAI's shape: ``{"object": "list", "data": [{"object": "embedding",
  "index": i, "embedding": [...] | "<base64 float32 LE>"}], "model": ...,
  "usage": {"prompt_tokens": n, "total_tokens": n}}``.
* ``GET /v1/models`` and ``GET /v1/models/{id}`` - the one model served.
* ``GET /healthz`` - 200 once the model is loaded, 503 while loading or failed.

The model is loaded in the worker thread at startup (`batching` runs it there);
`wire` reads requests and writes replies; `cli` runs the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmcache_embedder.batching import Batcher
from llmcache_embedder.model import Encoder
from llmcache_embedder.wire import ApiError, b64_float32, parse_input, to_float32

log = logging.getLogger(__name__)

EncoderFactory = Callable[[], Encoder]

DEFAULT_MAX_BATCH_TEXTS = 64
DEFAULT_MAX_INPUTS = 2048
DEFAULT_MAX_INPUT_CHARS = 32_768
DEFAULT_CLIENT_MAX_SIZE = 16 * 1024 * 1024


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
        texts = parse_input(body.get("input"), state.max_inputs, state.max_input_chars)
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

    encode = b64_float32 if fmt == "base64" else to_float32
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
