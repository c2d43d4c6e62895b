"""Gemini (Generative Language API) wire format: generateContent and streamGenerateContent."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .provider_answers import Answer, Json, conversation, first_tool, pieces
from .provider_core import Call, Dialect, Reply, SseEvent, Stream, endpoint, sse_json

# status -> (status name, message)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
# The real API answers a missing key with 403, not 401.
MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def error_json(status: int, message: str | None = None) -> Json:
    name, default_message = ERRORS.get(status, ("INTERNAL", "Internal error encountered."))
    return {"error": {"code": status, "message": message or default_message, "status": name}}


class GeminiDialect(Dialect):
    sse_newline = "\r\n"

    def reject(self, request: web.Request) -> web.Response | None:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return web.json_response(error_json(403, MISSING_KEY), status=403)
        return None

    def error_body(self, status: int) -> Any:
        return error_json(status)

    def stream_error(self, index: int) -> SseEvent:
        return sse_json(error_json(500))


def _answer(call: Call) -> Answer:
    body = call.body
    prompt, question = conversation(body.get("contents"), system=body.get("systemInstruction"), content_key="parts")
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
    return Answer(
        call.serial,
        prompt,
        question,
        first_tool(body.get("tools"), "none" if mode == "NONE" else None),
        call.fake.reply_to(body),
    )


def generate(call: Call) -> Reply:
    answer = _answer(call)
    return _chunk(answer, call, _parts(answer), last=True)


def stream_generate(call: Call) -> Reply:
    answer = _answer(call)
    parts = _parts(answer) if answer.tool else [{"text": p} for p in pieces(answer.text)]
    chunks = [_chunk(answer, call, [part], last=i == len(parts) - 1) for i, part in enumerate(parts)]
    if call.query.get("alt") != "sse":
        return chunks  # without alt=sse the API streams one JSON array
    return Stream([sse_json(chunk) for chunk in chunks])


def _parts(answer: Answer) -> list[Json]:
    if answer.tool:
        return [{"functionCall": {"name": answer.tool, "args": answer.arguments}}]
    return [{"text": answer.text}]


def _chunk(answer: Answer, call: Call, parts: list[Json], *, last: bool) -> Json:
    candidate: Json = {"content": {"parts": parts, "role": "model"}, "index": 0}
    chunk: Json = {"candidates": [candidate]}
    if last:
        candidate["finishReason"] = "STOP"
        total = answer.input_tokens + answer.output_tokens
        chunk["usageMetadata"] = {
            "promptTokenCount": answer.input_tokens,
            "candidatesTokenCount": answer.output_tokens,
            "totalTokenCount": total,
        }
    return {
        **chunk,
        "modelVersion": call.params["model"],
        "responseId": f"fake-{answer.serial}",
    }


def routes() -> list[web.RouteDef]:
    gemini = GeminiDialect()
    # google-genai defaults to v1; v1beta is what most other clients use.
    return [
        route
        for version in ("v1beta", "v1")
        for route in (
            web.post(
                f"/{version}/models/{{model}}:generateContent",
                endpoint(gemini, generate),
            ),
            web.post(
                f"/{version}/models/{{model}}:streamGenerateContent",
                endpoint(gemini, stream_generate),
            ),
        )
    ]
