"""Bounded metric labels: a label whose values come from requests keeps at most a few of them.

Every distinct label value is a time series kept for the life of the process, by the
sidecar and by whatever scrapes it. The model comes from the request body and, in
transparent mode, the provider of a pass-through request is whatever host the app
named: a client sending made-up names would grow the series without end. Each such
label admits its first `limit` values; any later new value is counted as `other`.
Spans and logs keep the real value (they make no series).
"""

from __future__ import annotations

from typing import Final

OTHER: Final = "other"
MAX_MODELS: Final = 100
"""Distinct `gen_ai.request.model` values per sidecar; later new ones count as `other`."""
MAX_HOSTS: Final = 50
"""Distinct pass-through hosts as `llmcache.provider` (transparent mode); configured providers are not capped."""


class LabelCap:
    """The first `limit` distinct values of one label pass; every later new value becomes `other`."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen or not value:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value
