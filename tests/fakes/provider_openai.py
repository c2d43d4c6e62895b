"""OpenAI and Azure OpenAI wire formats: chat completions, completions, embeddings, models.

The Responses API lives in ``provider_responses``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .provider_answers import (
    Answer,
    Json,
    conversation,
    embedding,
    first_tool,
    float32_base64,
    pieces,
    slices,
    text_of,
    words,
)
from .provider_core import (
    FAKE,
    Call,
    Dialect,
    Reply,
    SseEvent,
    Stream,
    bearer,
    caller_id,
    endpoint,
    sse_json,
)

MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
# status -> (type, code, message)
ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    500: ("server_error", None, SERVER_ERROR),
    503: (
        "server_error",
        None,
        "The engine is currently overloaded, please try again later.",
    ),
}
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")


def error_json(status: int) -> Json:
    default = ("server_error", None, SERVER_ERROR) if status >= 500 else ("invalid_request_error", None, "Error.")
    kind, code, message = ERRORS.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAIDialect(Dialect):
    def reject(self, request: web.Request) -> web.Response | None:
        gateway = request.app[FAKE].gateway_header
        if gateway is not None and request.headers.get(gateway):
            return None
        if bearer(request) is None:
            body = {
                "error": {
                    "message": MISSING_KEY,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            return web.json_response(body, status=401)
        return None

    def error_body(self, status: int) -> Any:
        return error_json(status)

    def stream_error(self, index: int) -> SseEvent:
        return sse_json(error_json(500))

    def caller_headers(self, request: web.Request, serial: int) -> dict[str, str]:
        gateway = request.app[FAKE].gateway_header
        caller = caller_id(request, *([gateway] if gateway else []))
        return {
            "openai-organization": f"org-{caller}",
            "openai-project": f"proj_{caller}",
            "x-request-id": f"req_{serial}",
            "openai-processing-ms": "12",
        }


class AzureDialect(OpenAIDialect):
    """Azure's gateway answers auth, routing and throttling itself, in its own shape."""

    def reject(self, request: web.Request) -> web.Response | None:
        if not (request.headers.get("api-key") or bearer(request)):
            message = (
                "Access denied due to missing subscription key. "
                "Make sure to include subscription key when making requests to an API."
            )
            return web.json_response({"error": {"code": "401", "message": message}}, status=401)
        if "api-version" not in request.query:
            return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
        return None

    def error_body(self, status: int) -> Any:
        if status == 429:
            message = (
                "Requests have exceeded call rate limit of your current pricing tier. Please retry after 1 second."
            )
            return {"error": {"code": "429", "message": message}}
        return error_json(status)


# --------------------------------------------------------------------------- chat completions


def usage(answer: Answer) -> Json:
    total = answer.input_tokens + answer.output_tokens
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": total,
    }


def chat_completions(call: Call) -> Reply:
    body = call.body
    prompt, question = conversation(body.get("messages"))
    answer = Answer(
        call.serial,
        prompt,
        question,
        first_tool(body.get("tools"), body.get("tool_choice")),
        call.fake.reply_to(body),
        call.fake.reported_tokens,
    )
    envelope = _envelope(call, f"chatcmpl-fake-{call.serial}", "chat.completion")
    finish = "tool_calls" if answer.tool else "stop"
    if body.get("stream"):
        choices: list[Json] = [
            {"index": 0, "delta": d, "logprobs": None, "finish_reason": None} for d in _deltas(answer)
        ]
        choices.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish})
        return _stream(
            {**envelope, "object": "chat.completion.chunk"},
            choices,
            _usage_if_asked(body, answer),
        )
    message: Json = {
        "role": "assistant",
        "content": None if answer.tool else answer.text,
        "refusal": None,
    }
    if answer.tool:
        message["tool_calls"] = [_tool_call(answer, answer.arguments_json)]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**envelope, "choices": [choice], "usage": usage(answer)}


def _deltas(answer: Answer) -> list[Json]:
    if answer.tool:
        first: Json = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"index": 0, **_tool_call(answer, "")}],
        }
        rest = [
            {"tool_calls": [{"index": 0, "function": {"arguments": part}}]} for part in slices(answer.arguments_json)
        ]
        return [first, *rest]
    return [
        {"role": "assistant", "content": "", "refusal": None},
        *({"content": p} for p in pieces(answer.text)),
    ]


def _tool_call(answer: Answer, arguments: str) -> Json:
    function = {"name": answer.tool, "arguments": arguments}
    return {
        "id": f"call_fake_{answer.serial}",
        "type": "function",
        "function": function,
    }


def _envelope(call: Call, id_: str, object_: str) -> Json:
    model = str(call.body.get("model") or call.params.get("deployment") or "gpt-fake")
    return {
        "id": id_,
        "object": object_,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }


def _usage_if_asked(body: Json, answer: Answer) -> Json | None:
    options = body.get("stream_options")
    return usage(answer) if isinstance(options, dict) and options.get("include_usage") else None


def _stream(envelope: Json, choices: list[Json], final_usage: Json | None) -> Stream:
    """OpenAI's chunk stream: one choice per chunk, an optional usage chunk, then [DONE]."""
    usage_field = {"usage": None} if final_usage is not None else {}
    events = [sse_json({**envelope, "choices": [choice], **usage_field}) for choice in choices]
    if final_usage is not None:
        events.append(sse_json({**envelope, "choices": [], "usage": final_usage}))
    return Stream([*events, SseEvent("[DONE]")])


# --------------------------------------------------------------------------- legacy completions


def completions(call: Call) -> Reply:
    body = call.body
    prompt = text_of(body.get("prompt", ""))
    answer = Answer(call.serial, prompt, prompt)
    envelope = _envelope(call, f"cmpl-fake-{call.serial}", "text_completion")
    if body.get("stream"):
        choices = [{"index": 0, "text": p, "logprobs": None, "finish_reason": None} for p in pieces(answer.text)]
        choices.append({"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"})
        return _stream(envelope, choices, _usage_if_asked(body, answer))
    choice = {
        "index": 0,
        "text": answer.text,
        "logprobs": None,
        "finish_reason": "stop",
    }
    return {**envelope, "choices": [choice], "usage": usage(answer)}


# --------------------------------------------------------------------------- embeddings


def embeddings(call: Call) -> Reply:
    body = call.body
    texts = _embedding_inputs(body.get("input"))
    dim = int(body.get("dimensions") or call.fake.embedding_dim)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embedding(text, dim)
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": float32_base64(vector) if as_base64 else vector,
            }
        )
    tokens = sum(words(text) for text in texts)
    model = str(body.get("model") or call.params.get("deployment"))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _embedding_inputs(raw: Any) -> list[str]:
    """Strings as they are; token arrays as space-separated numbers (so words == tokens)."""
    if isinstance(raw, str):
        return [raw]
    items = raw if isinstance(raw, list) else []
    if items and all(isinstance(x, int) for x in items):
        items = [items]
    return [x if isinstance(x, str) else " ".join(map(str, x)) for x in items]


# --------------------------------------------------------------------------- models


def models(call: Call) -> Reply:
    data = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "openai"} for name in MODELS]
    return {"object": "list", "data": data}


def routes() -> list[web.RouteDef]:
    openai, azure = OpenAIDialect(), AzureDialect()
    deployment = "/openai/deployments/{deployment}"
    return [
        web.post("/v1/chat/completions", endpoint(openai, chat_completions)),
        web.post("/v1/completions", endpoint(openai, completions)),
        web.post("/v1/embeddings", endpoint(openai, embeddings)),
        web.get("/v1/models", endpoint(openai, models)),
        web.post(f"{deployment}/chat/completions", endpoint(azure, chat_completions)),
        web.post(f"{deployment}/completions", endpoint(azure, completions)),
        web.post(f"{deployment}/embeddings", endpoint(azure, embeddings)),
    ]
