"""The vector index on Qdrant, through `qdrant-client` (the optional `qdrant` extra).

One collection (cosine distance, created on first use with the embedding's size);
a point per stored prompt, its id derived from the exact cache key, with the bucket,
the prompt text, the cache key and the expiry in its payload. A search is Qdrant's
nearest-neighbour query filtered to the bucket and to entries not yet expired, with
the similarity threshold applied by the server.

Limits, plainly: Qdrant keeps what it is given. `maxPerBucket` is not enforced here,
and expired points are filtered out of searches but not deleted; give the collection
its own retention (or drop it on a flush) if it grows. `url: ":memory:"` runs
qdrant-client's local mode in this process (for tests, or one pod).

Every qdrant-client error becomes `VectorIndexError` here, and every call is bounded
by `timeoutMs`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException

from llmcache_sidecar.semantic.embedder import Vector
from llmcache_sidecar.semantic.index import Candidate, Stored, VectorIndexError

_NAMESPACE = uuid.UUID("6c6c6d63-6163-6865-2d73-656d616e7469")


class QdrantIndex:
    name = "qdrant"

    def __init__(self, client: AsyncQdrantClient, *, collection: str, timeout: float, local: bool = False) -> None:
        self._client = client
        self._local = local
        self.collection = collection
        self._timeout = timeout
        self._ready: asyncio.Lock = asyncio.Lock()
        self._created = False

    @classmethod
    def from_url(cls, url: str, *, api_key: str | None, collection: str, timeout: float) -> QdrantIndex:
        if url == ":memory:":
            return cls(AsyncQdrantClient(location=":memory:"), collection=collection, timeout=timeout, local=True)
        client = AsyncQdrantClient(url=url, api_key=api_key, timeout=max(1, round(timeout)))
        return cls(client, collection=collection, timeout=timeout)

    async def search(self, bucket: str, vector: Vector, *, limit: int, threshold: float) -> list[Candidate]:
        if not await self._exists():
            return []
        query_filter = models.Filter(
            must=[
                models.FieldCondition(key="bucket", match=models.MatchValue(value=bucket)),
                models.FieldCondition(key="expires_at", range=models.Range(gt=time.time())),
            ]
        )
        response = await self._call(
            self._client.query_points(
                self.collection,
                query=list(vector),
                query_filter=query_filter,
                limit=limit,
                score_threshold=threshold,
                with_payload=True,
                with_vectors=True,
            )
        )
        found: list[Candidate] = []
        for point in response.points:
            payload: dict[str, Any] = point.payload or {}
            stored_vector = point.vector if isinstance(point.vector, list) else []
            stored = Stored(
                key=str(payload.get("key", "")),
                text=str(payload.get("text", "")),
                vector=tuple(float(x) for x in stored_vector if isinstance(x, (int, float))),
                expires_at=float(payload.get("expires_at", 0.0)),
            )
            found.append(Candidate(stored, float(point.score)))
        return found

    async def add(self, bucket: str, stored: Stored) -> None:
        await self._create(len(stored.vector))
        point = models.PointStruct(
            id=str(uuid.uuid5(_NAMESPACE, stored.key)),
            vector=list(stored.vector),
            payload={"bucket": bucket, "key": stored.key, "text": stored.text, "expires_at": stored.expires_at},
        )
        await self._call(self._client.upsert(self.collection, points=[point]))

    async def count(self) -> int | None:
        if not await self._exists():
            return 0
        result = await self._call(self._client.count(self.collection, exact=False))
        return int(result.count)

    async def aclose(self) -> None:
        await self._client.close()

    async def _exists(self) -> bool:
        if not self._created:
            self._created = bool(await self._call(self._client.collection_exists(self.collection)))
        return self._created

    async def _create(self, size: int) -> None:
        async with self._ready:
            if await self._exists():
                return
            await self._call(
                self._client.create_collection(
                    self.collection, vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE)
                )
            )
            if not self._local:  # local mode has no payload indexes (and says so)
                await self._call(
                    self._client.create_payload_index(self.collection, "bucket", models.PayloadSchemaType.KEYWORD)
                )
            self._created = True

    async def _call(self, call: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except (ApiException, TimeoutError, OSError, ValueError) as exc:
            raise VectorIndexError(f"qdrant: {type(exc).__name__}: {exc}") from exc
