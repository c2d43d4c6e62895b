"""From the pod as created to the pod as it should be: the JSON Patch, and the injection marker.

The patch is the RFC 6902 difference between two whole pods, computed by `jsonpatch`
(the diff kopf itself uses to answer the API server), so it is never written by hand
and a pod that already looks right gets no patch at all. The marker annotation
`llmcache.dev/injected: <cache name>` records that a pod was injected: a second
admission pass (reinvocation, or a pod re-created from its own manifest) adds nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import jsonpatch

INJECTED_ANNOTATION = "llmcache.dev/injected"

JsonPatch = list[dict[str, Any]]


def injected_by(pod: Mapping[str, Any]) -> str | None:
    """The cache a pod was injected with, if any."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(INJECTED_ANNOTATION)
    return str(value) if value is not None else None


def mark(pod: MutableMapping[str, Any], cache_name: str) -> None:
    """Record on `pod` (in place) that it carries `cache_name`'s sidecar."""
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    metadata["annotations"] = {**annotations, INJECTED_ANNOTATION: cache_name}


def json_patch(original: Mapping[str, Any], desired: Mapping[str, Any]) -> JsonPatch:
    """The operations that turn `original` into `desired`; empty when they are equal."""
    ops: JsonPatch = jsonpatch.JsonPatch.from_diff(dict(original), dict(desired)).patch
    return ops


def apply(original: Mapping[str, Any], ops: JsonPatch) -> dict[str, Any]:
    """`original` with `ops` applied, as a new object (as the API server would store it)."""
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(dict(original)), ops)
    return result


def becoming(desired: Mapping[str, Any]) -> Callable[[Any], None]:
    """A kopf patch function that turns the reviewed body into `desired`.

    kopf diffs the body before and after its patch functions and answers with that
    JSON Patch, which is exactly `json_patch(original, desired)`.
    """

    def become(body: Any) -> None:  # kopf's RawBody: a plain dict
        body.clear()
        body.update(copy.deepcopy(dict(desired)))

    return become
