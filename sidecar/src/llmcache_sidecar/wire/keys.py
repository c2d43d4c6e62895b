"""Cache keys: SHA-256 over canonical JSON, scoped by namespace, epoch and tenant.

    llmc:<format>:<namespace>:<epoch>:<tenant>:<sha256 hex>      an entry
    llmc:<format>:<namespace>:epoch                             its namespace's flush epoch
    llmc:<format>:<namespace>:<epoch>:<tenant>:<sha256 hex>:lease   who fetches that entry
    llmc:<format>:<namespace>:sem:<hash>                        a bucket of the semantic index
    llmc:<format>:<namespace>:savings:{<namespace>}:<minute>    what its sidecars saved that minute

Everything of one namespace starts with `llmc:<format>:<namespace>:` (its sub-namespaces,
`<namespace>/<sub>`, with `llmc:<format>:<namespace>/`), and namespaces hold neither `:`
nor `/`: one Redis ACL key pattern per namespace fences it (docs/security.md).

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
import hmac
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from llmcache_sidecar.config import KeyParams
from llmcache_sidecar.wire.render import Shape

if TYPE_CHECKING:
    from llmcache_sidecar.wire.policy import Decision

KEY_FORMAT = 2
"""2: the epoch, lease and semantic keys moved under their namespace's prefix; entries lost
the headers that name the caller, and the tenant hash took the install's salt."""
SHARED_TENANT = "shared"
ANONYMOUS_TENANT = "anon"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
_ENTRY_KEY = re.compile(
    rf"^llmc:{KEY_FORMAT}:(?P<namespace>{_NAME}(?:/{_NAME})?)"
    r":e[0-9]+(?:\.[0-9a-f]{8})?:(?:shared|anon|[0-9a-f]{32}):[0-9a-f]{64}$"
)


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


def caller_digest(*, provider: str, upstream: str, path: str, caller_key: str) -> str:
    """Digest of a caller-chosen key (`x-llmcache-key`), still scoped to provider, upstream and endpoint.

    The upstream matters in transparent mode, where every `*.openai.azure.com` host is one
    route (`azure`) with that host as its upstream: one resource never answers for another.
    """
    return hashlib.sha256(f"{provider}\0{upstream}\0{path}\0{caller_key}".encode()).hexdigest()


@lru_cache(maxsize=4096)
def tenant_of(credential: str | None, salt: bytes = b"") -> str:
    """A keyed one-way hash of the caller's credential; the credential itself is never kept.

    `salt` is the install's secret (`tenantSaltFile`): with it, the tenant part of a key
    (visible in `x-llmcache-key` and in spans) cannot be checked against a guessed API key,
    nor matched across installs. A new salt gives every credential a new tenant.
    """
    if not credential:
        return ANONYMOUS_TENANT
    return hmac.new(b"llmcache-tenant\0" + salt, credential.encode(), hashlib.sha256).hexdigest()[:32]


def epoch_tag(epoch: int, flush_suffix: str) -> str:
    """The epoch part of a key: the namespace's flush counter and the `flush` setting's hash."""
    return f"e{epoch}{flush_suffix}"


def compose(namespace: str, epoch: str, tenant: str, digest: str) -> str:
    return f"llmc:{KEY_FORMAT}:{namespace}:{epoch}:{tenant}:{digest}"


def scope(key: str) -> str:
    """Everything a key is scoped by (format, namespace, epoch, tenant): the key less its digest."""
    return key.rsplit(":", 1)[0]


def epoch_key(namespace: str) -> str:
    """Where a shared store keeps `namespace`'s flush epoch."""
    return f"llmc:{KEY_FORMAT}:{namespace}:epoch"


def savings_key(namespace: str, minute: int) -> str:
    """Where a shared store sums what `namespace`'s sidecars saved in `minute` (status.savings).

    Under the namespace's prefix, so that its ACL covers it; the hash tag (`{namespace}`)
    keeps a namespace's minutes on one Redis Cluster shard.
    """
    return f"llmc:{KEY_FORMAT}:{namespace}:savings:{{{namespace}}}:{minute}"


def lease_key(key: str) -> str:
    """Where a shared store keeps the lease of entry `key` (cross-pod coalescing)."""
    return f"{key}:lease"


def semantic_bucket(key: str, digest: str) -> str:
    """The semantic index bucket of requests keyed like `key` whose exact part is `digest`.

    Under the key's namespace, so that the namespace's ACL covers it; the rest is a hash of
    the key's whole scope (epoch, tenant) and of `digest`.
    """
    namespace = key.split(":", 3)[2]
    hashed = hashlib.sha256(f"{scope(key)}\0{digest}".encode()).hexdigest()[:40]
    return f"llmc:{KEY_FORMAT}:{namespace}:sem:{hashed}"


def entry_namespace(key: str) -> str | None:
    """The namespace (and sub-namespace) of an entry key this release makes; None for anything else.

    Epoch, lease and semantic keys, and keys of another format, are not entry keys.
    """
    match = _ENTRY_KEY.match(key)
    return match.group("namespace") if match else None


def within(namespace: str, own: str) -> bool:
    """`namespace` is `own` or one of its sub-namespaces (`own/<sub>`)."""
    return namespace == own or namespace.startswith(own + "/")


def short(key: str) -> str:
    """What logs show of a key: enough to correlate, never the whole key."""
    return key[-12:]


MemoKey = tuple[str, str, str, str, tuple[str | None, ...], bytes]
Known = tuple[str, "str | None", Shape, "Decision"]
"""What the memo keeps of a body: its digest, its model, its delivery shape, and what the policy decided for it."""


class DigestMemo:
    """The digest (model, delivery shape, policy decision) already computed for a raw request body.

    A repeated request, the common case for a cache, then skips parsing and canonical
    encoding: the body's SHA-256 replaces them. The memo is exact, not a heuristic: its
    key holds every input of `request_digest` other than the configuration (provider,
    upstream, path, query, the answer-changing headers, the raw bytes; the upstream
    because one transparent route has an upstream per host), and the runtime that owns
    it is rebuilt when the configuration changes. Bodies with a `cache` control field
    are never remembered. Bounded: the oldest entry goes first.
    """

    __slots__ = ("_items", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._items: dict[MemoKey, Known] = {}
        self._size = size

    @staticmethod
    def key(
        provider: str, upstream: str, path: str, query: str, headers: tuple[str | None, ...], body: bytes
    ) -> MemoKey:
        return (provider, upstream, path, query, headers, hashlib.sha256(body).digest())

    def get(self, key: MemoKey) -> Known | None:
        return self._items.get(key)

    def put(self, key: MemoKey, digest: str, model: str | None, shape: Shape, decision: Decision) -> None:
        if len(self._items) >= self._size:
            del self._items[next(iter(self._items))]
        self._items[key] = (digest, model, shape, decision)
