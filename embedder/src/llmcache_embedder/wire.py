"""OpenAI's embeddings wire format: reading a request's input, writing vectors, errors.

Pure: no I/O. The app (`app`) calls these; the shapes are OpenAI's, so that any
OpenAI-compatible client (the sidecar's embedder client, the openai SDK) works.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web


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


def parse_input(raw: Any, max_inputs: int, max_chars: int) -> list[str]:
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


def b64_float32(vec: Sequence[float]) -> str:
    buf = array.array("f", vec)
    if sys.byteorder != "little":
        buf.byteswap()
    return base64.b64encode(buf.tobytes()).decode("ascii")


def to_float32(vec: Sequence[float]) -> list[float]:
    # Same precision as the base64 path, so both formats agree.
    return array.array("f", vec).tolist()
