"""The embeddings client: any OpenAI-compatible `/v1/embeddings` endpoint, failing open.

One call per distinct text: embeddings are kept in a bounded LRU keyed by the
model and the (normalised) text, so a repeated prompt costs no call, and the vector
computed on a miss is the one stored after the answer comes back. Every call has its
own timeout; a slow, failing, oversized or malformed answer is an `EmbeddingError`,
which the matcher turns into a plain miss (counted), never into a failed request.

It uses the app's one `ClientSession`, passed in per call, and sends the API key
from `apiKeyFile` (read once, when the settings are loaded) as a bearer token.

A vector is an `array('f')`: float32, 4 bytes a dimension (about 1.6 KiB for 384
dimensions, against 12 KiB as a tuple of Python floats), which is the precision the
model computes in and the Redis and Qdrant stores keep anyway. Every place a vector is
held (this LRU, the misses waiting for their answer, the memory index) holds it so.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeAlias

import aiohttp
import orjson

from llmcache_sidecar.config import EmbeddingSettings, read_secret
from llmcache_sidecar.semantic.reply import ReplyError, call_failed, read_capped

Vector: TypeAlias = "array[float]"
"""A unit-length embedding as float32 (typecode "f")."""
MAX_REPLY_BYTES = 2**20
"""The longest embeddings reply read: a 3072-dimension vector is about 16 KiB as base64 and
under 80 KiB as JSON numbers, so 1 MiB leaves room for any model; a longer reply is an error."""


class EmbeddingError(Exception):
    """The embeddings endpoint gave no usable vector (timeout, error status, bad body)."""


class EmbeddingClient:
    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/embeddings"
        # identity: the app's session does not decompress (it proxies bodies as they are).
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        key = read_secret(settings.api_key_file, "semantic.embedding.apiKeyFile")
        if key is not None:
            self._headers["Authorization"] = f"Bearer {key}"
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_ms / 1000)
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self.calls = 0
        self.cached = 0

    async def embed(self, session: aiohttp.ClientSession, text: str) -> Vector:
        """The unit-length embedding of `text` (from the cache when this text was embedded before)."""
        vector = self._cache.get(text)
        if vector is not None:
            self._cache.move_to_end(text)
            self.cached += 1
            return vector
        vector = await self._call(session, text)
        if self.settings.cache_entries:
            self._cache[text] = vector
            while len(self._cache) > self.settings.cache_entries:
                self._cache.popitem(last=False)
        return vector

    async def _call(self, session: aiohttp.ClientSession, text: str) -> Vector:
        self.calls += 1
        body = orjson.dumps({"model": self.settings.model, "input": [text], "encoding_format": "base64"})
        try:
            async with session.post(self.url, data=body, headers=self._headers, timeout=self._timeout) as resp:
                payload = await read_capped(resp, MAX_REPLY_BYTES)
        except ReplyError as exc:
            raise EmbeddingError(f"embeddings endpoint {exc}") from exc
        except Exception as exc:  # a miss, never an error to the app; a bug is logged as one
            raise EmbeddingError(call_failed("embeddings call", exc)) from exc
        return _unit(_parse(payload))


def _parse(payload: bytes) -> list[float]:
    try:
        data = orjson.loads(payload)
        raw = data["data"][0]["embedding"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise EmbeddingError("embeddings answer has no data[0].embedding") from exc
    if isinstance(raw, str):  # base64 little-endian float32, as OpenAI sends it
        try:
            packed = base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise EmbeddingError("embedding is not valid base64") from exc
        if not packed or len(packed) % 4:
            raise EmbeddingError("embedding is not a float32 array")
        values = array("f", packed)
        if sys.byteorder == "big":
            values.byteswap()
        return values.tolist()
    if isinstance(raw, list) and raw and all(isinstance(x, (int, float)) for x in raw):
        return [float(x) for x in raw]
    raise EmbeddingError("embedding is neither base64 nor a list of numbers")


def _unit(values: list[float]) -> Vector:
    norm = math.sqrt(math.fsum(x * x for x in values))
    if not norm or not math.isfinite(norm):
        raise EmbeddingError("embedding has no direction")
    return array("f", [x / norm for x in values])


def cosine(a: Vector, b: Sequence[float]) -> float:
    """Cosine similarity of two unit vectors; 0 when the sizes differ.

    `b` is best a list of Python floats (`Vector.tolist()`, made once per search): then
    this is one C call, `math.dist`, and for unit vectors a.b = 1 - |a - b|^2 / 2. It is
    faster than summing the products in Python, which Python 3.11 has no C function for.
    """
    if len(a) != len(b):
        return 0.0
    return 1.0 - math.dist(a.tolist(), b) ** 2 / 2
