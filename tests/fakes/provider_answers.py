"""The provider-neutral answer to a call, and the text helpers every provider shares.

Answers are deterministic from the request, except for the serial number, which grows per call:
``Echo #<n>: <last user message>``, with token counts in words (prompt words, answer words).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """The provider-neutral answer to one call; providers only format it."""

    serial: int
    prompt: str  # all prompt text, for token counts
    question: str  # the last user message
    tool: str | None = None  # call this tool instead of answering in text
    reply: str | None = None  # the text a test's reply rule chose, instead of the echo
    tokens: tuple[int, int] | None = None  # (input, output) usage to report instead of the word counts

    @property
    def text(self) -> str:
        return self.reply if self.reply is not None else f"Echo #{self.serial}: {self.question}"

    @property
    def arguments(self) -> Json:
        return {"echo": self.question, "serial": self.serial}

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)

    @property
    def output(self) -> str:
        return self.arguments_json if self.tool else self.text

    @property
    def input_tokens(self) -> int:
        return self.tokens[0] if self.tokens is not None else words(self.prompt)

    @property
    def output_tokens(self) -> int:
        return self.tokens[1] if self.tokens is not None else words(self.output)


def text_of(content: Any) -> str:
    """Plain text of a message content in any provider's shape (string, parts, blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(t for t in map(text_of, content) if t)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        return text_of(content.get("parts") or content.get("content"))
    return ""


def conversation(turns: Any, *, system: Any = None, content_key: str = "content") -> tuple[str, str]:
    """(all prompt text, last user message) of a list of role/content turns."""
    messages = [m for m in turns if isinstance(m, dict)] if isinstance(turns, list) else []
    texts = [text_of(system), *(text_of(m.get(content_key)) for m in messages)]
    users = [text_of(m.get(content_key)) for m in messages if m.get("role", "user") == "user"]
    return " ".join(t for t in texts if t), users[-1] if users else ""


def first_tool(tools: Any, choice: Any = None) -> str | None:
    """Name of the first declared tool in any provider's shape, unless tool use is switched off."""
    if choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        for candidate in (
            tool,
            tool.get("function"),
            *(tool.get("functionDeclarations") or []),
        ):
            if isinstance(candidate, dict) and isinstance(candidate.get("name"), str):
                return str(candidate["name"])
    return None


def words(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Word-sized stream deltas that join back to ``text``."""
    return re.findall(r"\s*\S+|\s+$", text)


def slices(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector from a hash of ``text``, exactly representable as float32."""
    stream = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest() for i in range(dim // 8 + 1))
    raw = [int.from_bytes(stream[4 * i : 4 * i + 4], "big") / 2**31 - 1.0 for i in range(dim)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(x / norm for x in raw))))


def float32_base64(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
