"""OpenAI's Responses API: JSON, and typed SSE events (``event:`` and ``data:`` lines).

With a function tool declared (and ``tool_choice`` not ``none``), the answer is a
``function_call`` item instead of a message, streamed as the API streams one.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiohttp import web

from .provider_answers import Answer, Json, conversation, first_tool, pieces, slices
from .provider_core import Call, Reply, SseEvent, Stream, endpoint, sse_json
from .provider_openai import SERVER_ERROR, OpenAIDialect


class ResponsesDialect(OpenAIDialect):
    def stream_error(self, index: int) -> SseEvent:
        error = {
            "type": "error",
            "code": "server_error",
            "message": SERVER_ERROR,
            "param": None,
        }
        return sse_json({**error, "sequence_number": index}, "error")


def responses(call: Call) -> Reply:
    body = call.body
    raw = body.get("input", "")
    turns = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    prompt, question = conversation(turns, system=body.get("instructions"))
    answer = Answer(call.serial, prompt, question, first_tool(body.get("tools"), body.get("tool_choice")))
    if body.get("stream"):
        return Stream(_response_events(answer, call))
    return _response(answer, call, done=True)


def _response(answer: Answer, call: Call, *, done: bool) -> Json:
    now = int(time.time())
    return {
        "id": f"resp_fake_{answer.serial}",
        "object": "response",
        "created_at": now,
        "status": "completed" if done else "in_progress",
        "completed_at": now if done else None,
        "error": None,
        "incomplete_details": None,
        "instructions": call.body.get("instructions"),
        "max_output_tokens": call.body.get("max_output_tokens"),
        "model": str(call.body.get("model") or "gpt-fake"),
        "output": [_item(answer, done=True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": call.body.get("previous_response_id"),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {},
        "usage": _response_usage(answer) if done else None,
    }


def _item(answer: Answer, *, done: bool) -> Json:
    return _function_call(answer, done=done) if answer.tool else _message(answer, done=done)


def _function_call(answer: Answer, *, done: bool) -> Json:
    return {
        "id": f"fc_fake_{answer.serial}",
        "type": "function_call",
        "status": "completed" if done else "in_progress",
        "arguments": answer.arguments_json if done else "",
        "call_id": f"call_fake_{answer.serial}",
        "name": answer.tool,
    }


def _message(answer: Answer, *, done: bool) -> Json:
    content = [_output_text(answer.text)] if done else []
    status = "completed" if done else "in_progress"
    return {
        "id": f"msg_fake_{answer.serial}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response_usage(answer: Answer) -> Json:
    return {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _response_events(answer: Answer, call: Call) -> list[SseEvent]:
    sequence = itertools.count()

    def event(type_: str, **fields: Any) -> SseEvent:
        return sse_json({"type": type_, **fields, "sequence_number": next(sequence)}, type_)

    created = [
        event("response.created", response=_response(answer, call, done=False)),
        event("response.in_progress", response=_response(answer, call, done=False)),
        event("response.output_item.added", output_index=0, item=_item(answer, done=False)),
    ]
    if answer.tool:
        at = {"item_id": f"fc_fake_{answer.serial}", "output_index": 0}
        return [
            *created,
            *(event("response.function_call_arguments.delta", **at, delta=p) for p in slices(answer.arguments_json)),
            event("response.function_call_arguments.done", **at, arguments=answer.arguments_json),
            event("response.output_item.done", output_index=0, item=_item(answer, done=True)),
            event("response.completed", response=_response(answer, call, done=True)),
        ]
    where = {
        "item_id": f"msg_fake_{answer.serial}",
        "output_index": 0,
        "content_index": 0,
    }
    return [
        *created,
        event("response.content_part.added", **where, part=_output_text("")),
        *(event("response.output_text.delta", **where, delta=p, logprobs=[]) for p in pieces(answer.text)),
        event("response.output_text.done", **where, text=answer.text, logprobs=[]),
        event("response.content_part.done", **where, part=_output_text(answer.text)),
        event(
            "response.output_item.done",
            output_index=0,
            item=_message(answer, done=True),
        ),
        event("response.completed", response=_response(answer, call, done=True)),
    ]


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/responses", endpoint(ResponsesDialect(), responses))]
