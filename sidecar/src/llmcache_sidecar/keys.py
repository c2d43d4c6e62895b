"""Cache keys: SHA-256 over canonical JSON, scoped by namespace, epoch and tenant.

    llmc:<format>:<namespace>:<epoch>:<tenant>:<sha256 hex>

- canonical JSON: sorted keys, no insignificant whitespace (orjson), so two bodies
  that differ only in key order or spacing share an entry; numbers and strings are
  kept exactly as sent.
- what is hashed: the provider's name and upstream, the endpoint path, the query
  (credentials removed), the request headers that change the answer (say
  `anthropic-version`), and the body less the excluded fields.
- `format` moves on whenever a release changes how keys or entries are made, so old
  entries are never read as new ones.
- `epoch` moves on with every flush; `tenant` is a hash of the caller's credential
  (or `shared` with `isolation: namespace`), so two API keys never share an entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from llmcache_sidecar.config import KeyParams

KEY_FORMAT = 1
SHARED_TENANT = "shared"
ANONYMOUS_TENANT = "anon"


def key_fields(body: Mapping[str, Any], params: KeyParams) -> dict[str, Any]:
    """The body fields that make the key (the `cache` control field never does)."""
    if params.include:
        return {k: body[k] for k in params.include if k in body}
    excluded = params.exclude
    return {k: v for k, v in body.items() if k not in excluded and k != "cache"}


def request_digest(
    *,
    provider: str,
    upstream: str,
    path: str,
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    fields: Mapping[str, Any],
) -> str:
    """SHA-256 hex of everything that can change the answer, canonically encoded."""
    canonical = orjson.dumps([provider, upstream, path, query, headers, fields], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def caller_digest(*, provider: str, path: str, caller_key: str) -> str:
    """Digest of a caller-chosen key (`x-llmcache-key`), still scoped to provider and endpoint."""
    return hashlib.sha256(f"{provider}\0{path}\0{caller_key}".encode()).hexdigest()


@lru_cache(maxsize=4096)
def tenant_of(credential: str | None) -> str:
    """A one-way hash of the caller's credential; the credential itself is never kept."""
    if not credential:
        return ANONYMOUS_TENANT
    return hashlib.sha256(b"llmcache-tenant\0" + credential.encode()).hexdigest()[:32]


def compose(namespace: str, epoch: str, tenant: str, digest: str) -> str:
    return f"llmc:{KEY_FORMAT}:{namespace}:{epoch}:{tenant}:{digest}"


def short(key: str) -> str:
    """What logs show of a key: enough to correlate, never the whole key."""
    return key[-12:]
