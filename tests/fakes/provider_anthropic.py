"""Anthropic wire format: the Messages API, JSON and SSE, with tool_use blocks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .provider_answers import Answer, Json, conversation, first_tool, pieces, slices
from .provider_core import (
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

# status -> (error type, message)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error_json(status: int, kind: str | None = None, message: str | None = None) -> Json:
    default_kind, default_message = ERRORS.get(status, ("api_error", "Internal server error"))
    error = {"type": kind or default_kind, "message": message or default_message}
    return {"type": "error", "error": error, "request_id": "req_fake"}


class AnthropicDialect(Dialect):
    def reject(self, request: web.Request) -> web.Response | None:
        if not (request.headers.get("x-api-key") or bearer(request)):
            return web.json_response(error_json(401, message="x-api-key header is required"), status=401)
        return None

    def error_body(self, status: int) -> Any:
        return error_json(status)

    def stream_error(self, index: int) -> SseEvent:
        error = error_json(529)
        del error["request_id"]
        return sse_json(error, "error")

    def caller_headers(self, request: web.Request, serial: int) -> dict[str, str]:
        caller = caller_id(request, "x-api-key")
        return {"request-id": f"req_{serial}", "anthropic-organization-id": f"org-{caller}"}


def messages(call: Call) -> Reply:
    body = call.body
    prompt, question = conversation(body.get("messages"), system=body.get("system"))
    answer = Answer(
        call.serial,
        prompt,
        question,
        first_tool(body.get("tools"), body.get("tool_choice")),
        call.fake.reply_to(body),
    )
    model = str(body.get("model") or "claude-fake")
    if body.get("stream"):
        return Stream(_events(answer, model))
    return _message(
        answer,
        model,
        [_block(answer, done=True)],
        "tool_use" if answer.tool else "end_turn",
    )


def _message(answer: Answer, model: str, content: list[Json], stop_reason: str | None) -> Json:
    usage = {
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens if stop_reason else 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    return {
        "id": f"msg_fake_{answer.serial}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _block(answer: Answer, *, done: bool) -> Json:
    if answer.tool:
        tool_input = answer.arguments if done else {}
        return {
            "type": "tool_use",
            "id": f"toolu_fake_{answer.serial}",
            "name": answer.tool,
            "input": tool_input,
        }
    return {"type": "text", "text": answer.text if done else ""}


def _deltas(answer: Answer) -> list[Json]:
    if answer.tool:
        return [{"type": "input_json_delta", "partial_json": part} for part in slices(answer.arguments_json)]
    return [{"type": "text_delta", "text": part} for part in pieces(answer.text)]


def _events(answer: Answer, model: str) -> list[SseEvent]:
    def event(type_: str, **fields: Any) -> SseEvent:
        return sse_json({"type": type_, **fields}, type_)

    stop_reason = "tool_use" if answer.tool else "end_turn"
    return [
        event("message_start", message=_message(answer, model, [], None)),
        event("content_block_start", index=0, content_block=_block(answer, done=False)),
        event("ping"),
        *(event("content_block_delta", index=0, delta=delta) for delta in _deltas(answer)),
        event("content_block_stop", index=0),
        event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": answer.output_tokens},
        ),
        event("message_stop"),
    ]


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/messages", endpoint(AnthropicDialect(), messages))]
