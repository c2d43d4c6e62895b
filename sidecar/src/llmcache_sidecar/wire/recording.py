"""Telling a replay miss what differs: request fingerprints, and the nearest recorded one.

In record mode each stored entry keeps the fingerprint of its request: every part that
makes the key (provider, endpoint, query, answer-changing headers, each body field),
as a short hash. A replay miss compares its own fingerprint with those this sidecar
recorded or imported, in the same scope (namespace, epoch, tenant), and names the
parts where the nearest one differs ("body.messages", "body.temperature"), which is
usually the test's bug. Hashes, not values: a fingerprint says that a prompt changed,
never what it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmcache_sidecar.wire import keys

Fingerprint = tuple[tuple[str, str], ...]


def fingerprint(
    *, provider: str, path: str, query: list[tuple[str, str]], headers: list[tuple[str, str]], fields: Mapping[str, Any]
) -> Fingerprint:
    """The parts of a request that make its key (`keys.request_digest`'s inputs), each as a short hash."""
    parts: list[tuple[str, Any]] = [("provider", provider), ("endpoint", path), ("query", query), ("headers", headers)]
    parts += [(f"body.{name}", value) for name, value in sorted(fields.items())]
    return tuple((name, _short_hash(value)) for name, value in parts)


def differences(a: Fingerprint, b: Fingerprint) -> list[str]:
    """The parts present in only one of the two, or with different values."""
    left, right = dict(a), dict(b)
    return sorted(name for name in left.keys() | right.keys() if left.get(name) != right.get(name))


@dataclass(frozen=True, slots=True)
class Nearest:
    key: str
    differs: list[str]


class RecordIndex:
    """The fingerprints of the entries this process recorded or imported, bounded (oldest out first)."""

    __slots__ = ("_items", "_size")

    def __init__(self, size: int = 20_000) -> None:
        self._items: dict[str, Fingerprint] = {}
        self._size = size

    def add(self, key: str, request: Fingerprint) -> None:
        if not request:
            return
        self._items.pop(key, None)
        if len(self._items) >= self._size:
            del self._items[next(iter(self._items))]
        self._items[key] = request

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, Fingerprint]]:
        return iter(list(self._items.items()))

    def nearest(self, key: str, request: Fingerprint) -> Nearest | None:
        """The recorded request in `key`'s scope that differs from `request` in the fewest parts."""
        scope = keys.scope(key)
        best: Nearest | None = None
        for other, recorded in self._items.items():
            if other == key or keys.scope(other) != scope:
                continue
            differs = differences(request, recorded)
            if best is None or len(differs) < len(best.differs):
                best = Nearest(other, differs)
        return best


def _short_hash(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
