"""Reading Server-Sent Events out of a recorded stream.

Used once per stored stream, after it ended, to check the provider's end marker and
read its usage; never on a hit, which replays the recorded bytes as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

_EVENT_SPLIT = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(frozen=True)
class Event:
    """One SSE event: its `event:` name (None when absent) and joined `data:` lines."""

    name: str | None
    data: bytes

    @property
    def json(self) -> dict[str, Any] | None:
        """The data as a JSON object, read on each access: not kept, so that a long stream's
        events do not all hold their parsed form at once (the recording is bounded, its parse too)."""
        try:
            value = orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


def parse(body: bytes) -> list[Event]:
    """The complete events in `body`; a trailing event without its blank line is dropped."""
    return list(iter_events(body))


def iter_events(body: bytes) -> Iterator[Event]:
    """`parse`, one event at a time: a long stream is read without all its events at once."""
    start = 0
    for boundary in _EVENT_SPLIT.finditer(body):
        event = _event(body[start : boundary.start()])
        start = boundary.end()
        if event is not None:
            yield event


def _event(block: bytes) -> Event | None:
    name: str | None = None
    data: list[bytes] = []
    for line in block.splitlines():
        if not line or line.startswith(b":"):
            continue
        fld, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if fld == b"event":
            name = value.decode("utf-8", "replace")
        elif fld == b"data":
            data.append(value)
    if name is None and not data:
        return None
    return Event(name, b"\n".join(data))
