"""Google Cloud Storage through gcloud-aio-storage (asyncio, on aiohttp).

The official `google-cloud-storage` client is synchronous; gcloud-aio-storage speaks
the same JSON API natively in asyncio. Credentials: a service-account key file
(`credentialsFile`), else Application Default Credentials, which on GKE means
Workload Identity through the metadata server. With `endpointUrl` set (an emulator)
no token is fetched or sent.

One aiohttp session per process, created on first use inside the running loop.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp
from gcloud.aio.storage import Storage

from llmcache_sidecar.backends.base import BackendError

_ERRORS = (aiohttp.ClientError, OSError)


class GcsStore:
    """The `ObjectStore` transport for one GCS bucket."""

    name = "gcs"

    def __init__(
        self,
        *,
        bucket: str,
        credentials_file: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 1.0,
        max_connections: int = 32,
    ) -> None:
        self._bucket = bucket
        self._credentials_file = credentials_file
        self._endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._timeout = timeout
        # The library's per-call timeout is whole seconds; FailOpen holds the real deadline.
        self._call_timeout = max(1, math.ceil(timeout))
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._storage: Storage | None = None
        self._lock = asyncio.Lock()

    async def read(self, name: str) -> bytes | None:
        storage = await self._client()
        try:
            return await storage.download(self._bucket, name, timeout=self._call_timeout)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                return None
            raise BackendError(f"gcs download: {exc.status} {exc.message}") from exc
        except _ERRORS as exc:
            raise BackendError(f"gcs download: {exc}") from exc

    async def write(self, name: str, data: bytes) -> None:
        storage = await self._client()
        try:
            await storage.upload(
                self._bucket, name, data, content_type="application/octet-stream", timeout=self._call_timeout
            )
        except _ERRORS as exc:
            raise BackendError(f"gcs upload: {exc}") from exc

    async def remove(self, name: str) -> bool:
        storage = await self._client()
        try:
            await storage.delete(self._bucket, name, timeout=self._call_timeout)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                return False
            raise BackendError(f"gcs delete: {exc.status} {exc.message}") from exc
        except _ERRORS as exc:
            raise BackendError(f"gcs delete: {exc}") from exc
        return True

    async def check(self) -> None:
        storage = await self._client()
        try:
            await storage.get_bucket_metadata(self._bucket, timeout=self._call_timeout)
        except _ERRORS as exc:
            raise BackendError(f"gcs bucket {self._bucket!r}: {exc}") from exc

    async def aclose(self) -> None:
        async with self._lock:
            storage, session = self._storage, self._session
            self._storage = self._session = None
            if storage is not None:
                await storage.close()
            if session is not None:
                await session.close()

    async def _client(self) -> Storage:
        if self._storage is not None:
            return self._storage
        async with self._lock:
            if self._storage is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self._max_connections),
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                )
                self._storage = Storage(
                    service_file=self._credentials_file,
                    session=self._session,  # type: ignore[arg-type]  # its stubs see the requests flavour
                    api_root=self._endpoint_url,
                )
            return self._storage
