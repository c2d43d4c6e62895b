"""The vector index on Qdrant, through `qdrant-client` (the optional `qdrant` extra).

One collection (cosine distance, created on first use with the embedding's size);
a point per stored prompt, its id derived from the exact cache key, with the bucket,
the prompt text, the cache key, when it was added and when it expires in its payload.
A search is Qdrant's nearest-neighbour query filtered to the bucket and to entries not
yet expired, with the similarity threshold applied by the server.

Each add also keeps the bucket within its bounds, with Qdrant's own filter, scroll and
delete: after the upsert, one scroll reads the bucket's newest `maxPerBucket + 1`
points (their times only, ordered by `added_at` on the server) and, when the bucket is
over its bound or holds an expired point, one delete-by-filter removes the bucket's
expired points and every point added no later than the oldest of the newest
`maxPerBucket` but not one of them (by id: prompts added in the same clock tick tie
on `added_at`, and the one just added is always kept). So an add is two calls, three
when something goes; a bucket never holds more than `maxPerBucket` prompts once its
add returns, and an expired prompt stays only until its bucket is next written
(searches skip it meanwhile). Limits, plainly: sidecars adding to one bucket at once
may each trim it (never below the newest `maxPerBucket` by time; among prompts tied on
time, each add keeps its own first); "newest" is by each sidecar's clock; points
written by releases before this one have no `added_at`, so they are not trimmed, only
deleted once expired. `url: ":memory:"` runs
qdrant-client's local mode in this process (for tests, or one pod).

Every qdrant-client error becomes `VectorIndexError` here, and every call is bounded
by `timeoutMs`. When the upsert succeeded but the clean-up failed, the add still
raises: the prompt is searchable, and the next add cleans up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from array import array
from collections.abc import Callable
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException

from llmcache_sidecar.semantic.embedder import Vector
from llmcache_sidecar.semantic.index import Candidate, Stored, VectorIndexError

_NAMESPACE = uuid.UUID("6c6c6d63-6163-6865-2d73-656d616e7469")
# Payload fields a filter or an ordering reads; a Qdrant server needs an index on each
# (order_by refuses a field without a range index). Local mode has none and needs none.
_INDEXED = (
    ("bucket", models.PayloadSchemaType.KEYWORD),
    ("added_at", models.PayloadSchemaType.FLOAT),
    ("expires_at", models.PayloadSchemaType.FLOAT),
)


class QdrantIndex:
    name = "qdrant"

    def __init__(
        self,
        client: AsyncQdrantClient,
        *,
        collection: str,
        timeout: float,
        max_per_bucket: int,
        local: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._local = local
        self._clock = clock
        self.collection = collection
        self.max_per_bucket = max_per_bucket
        self._timeout = timeout
        self._ready: asyncio.Lock = asyncio.Lock()
        self._created = False
        self._indexed = local

    @classmethod
    def from_url(
        cls, url: str, *, api_key: str | None, collection: str, timeout: float, max_per_bucket: int
    ) -> QdrantIndex:
        if url == ":memory:":
            client = AsyncQdrantClient(location=":memory:")
            return cls(client, collection=collection, timeout=timeout, max_per_bucket=max_per_bucket, local=True)
        client = AsyncQdrantClient(url=url, api_key=api_key, timeout=max(1, round(timeout)))
        return cls(client, collection=collection, timeout=timeout, max_per_bucket=max_per_bucket)

    async def search(self, bucket: str, vector: Vector, *, limit: int, threshold: float) -> list[Candidate]:
        if not await self._exists():
            return []
        query_filter = models.Filter(
            must=[
                models.FieldCondition(key="bucket", match=models.MatchValue(value=bucket)),
                models.FieldCondition(key="expires_at", range=models.Range(gt=self._clock())),
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
                vector=array("f", [float(x) for x in stored_vector if isinstance(x, (int, float))]),
                expires_at=float(payload.get("expires_at", 0.0)),
            )
            found.append(Candidate(stored, float(point.score)))
        return found

    async def add(self, bucket: str, stored: Stored) -> None:
        now = self._clock()
        if stored.expires_at <= now:
            return
        await self._create(len(stored.vector))
        point_id = str(uuid.uuid5(_NAMESPACE, stored.key))
        point = models.PointStruct(
            id=point_id,
            vector=list(stored.vector),
            payload={
                "bucket": bucket,
                "key": stored.key,
                "text": stored.text,
                "added_at": now,
                "expires_at": stored.expires_at,
            },
        )
        await self._call(self._client.upsert(self.collection, points=[point]))
        await self._clean(bucket, now, point_id)

    async def _clean(self, bucket: str, now: float, added: str) -> None:
        """Delete `bucket`'s expired points and those past its newest `max_per_bucket` (see the module).

        "Past the newest" is by id, not by time alone: points added in the same clock tick
        tie on `added_at`, and a time cut-off would keep every one of them. The point just
        `added` is always among those kept.
        """
        in_bucket = models.FieldCondition(key="bucket", match=models.MatchValue(value=bucket))
        newest, _ = await self._call(
            self._client.scroll(
                self.collection,
                scroll_filter=models.Filter(must=[in_bucket]),
                limit=self.max_per_bucket + 1,
                order_by=models.OrderBy(key="added_at", direction=models.Direction.DESC),
                with_payload=["added_at", "expires_at"],
                with_vectors=False,
            )
        )
        over = len(newest) > self.max_per_bucket
        if not over and all(_payload_time(p, "expires_at") > now for p in newest):
            return
        gone: list[models.Condition] = [models.FieldCondition(key="expires_at", range=models.Range(lte=now))]
        if over:
            kept = [added, *(str(p.id) for p in newest if str(p.id) != added)][: self.max_per_bucket]
            oldest_kept = min([now, *(_payload_time(p, "added_at") for p in newest if str(p.id) in kept)])
            # At or before the oldest kept time, and not kept: so a point another sidecar
            # adds meanwhile (later, by its clock) is left alone.
            gone.append(
                models.Filter(
                    must=[models.FieldCondition(key="added_at", range=models.Range(lte=oldest_kept))],
                    must_not=[models.HasIdCondition(has_id=list(kept))],
                )
            )
        selector = models.FilterSelector(filter=models.Filter(must=[in_bucket], should=gone))
        await self._call(self._client.delete(self.collection, points_selector=selector))

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
            if not await self._exists():
                await self._call(
                    self._client.create_collection(
                        self.collection, vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE)
                    )
                )
                self._created = True
            if not self._indexed:
                # Also for a collection an earlier release made without the index on
                # added_at, which order_by needs. Only the missing ones are created.
                info = await self._call(self._client.get_collection(self.collection))
                have = set(info.payload_schema or {})
                for field_name, schema in _INDEXED:
                    if field_name not in have:
                        await self._call(self._client.create_payload_index(self.collection, field_name, schema))
                self._indexed = True

    async def _call(self, call: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except (ApiException, TimeoutError, OSError, ValueError) as exc:
            raise VectorIndexError(f"qdrant: {type(exc).__name__}: {exc}") from exc


def _payload_time(point: models.Record, field_name: str) -> float:
    value = (point.payload or {}).get(field_name)
    return float(value) if isinstance(value, (int, float)) else 0.0
