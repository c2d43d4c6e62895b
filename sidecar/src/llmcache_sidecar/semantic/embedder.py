"""The embeddings client: any OpenAI-compatible `/v1/embeddings` endpoint, failing open.

One call per distinct text: embeddings are kept in a bounded LRU keyed by the
model and the (normalised) text, so a repeated prompt costs no call, and the vector
computed on a miss is the one stored after the answer comes back. Every call has its
own timeout; a slow, failing or malformed answer is an `EmbeddingError`, which the
matcher turns into a plain miss (counted), never into a failed request.

It uses the app's one `ClientSession`, passed in per call, and sends the API key
from `apiKeyFile` (read once, when the settings are loaded) as a bearer token.
"""

from __future__ import annotations

import base64
import math
import operator
import struct
from collections import OrderedDict

import aiohttp
import orjson

from llmcache_sidecar.config import EmbeddingSettings, read_secret

Vector = tuple[float, ...]


class EmbeddingError(Exception):
    """The embeddings endpoint gave no usable vector (timeout, error status, bad body)."""


class EmbeddingClient:
    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/embeddings"
        self._headers = {"Content-Type": "application/json"}
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
                payload = await resp.read()
                if resp.status != 200:
                    raise EmbeddingError(f"embeddings endpoint answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EmbeddingError(f"embeddings endpoint unreachable: {type(exc).__name__}") from exc
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
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    if isinstance(raw, list) and raw and all(isinstance(x, (int, float)) for x in raw):
        return [float(x) for x in raw]
    raise EmbeddingError("embedding is neither base64 nor a list of numbers")


def _unit(values: list[float]) -> Vector:
    norm = math.sqrt(sum(x * x for x in values))
    if not norm or not math.isfinite(norm):
        raise EmbeddingError("embedding has no direction")
    return tuple(x / norm for x in values)


def cosine(a: Vector, b: Vector) -> float:
    """Cosine similarity of two unit vectors (their dot product); 0 when the sizes differ."""
    if len(a) != len(b):
        return 0.0
    return float(sum(map(operator.mul, a, b)))
