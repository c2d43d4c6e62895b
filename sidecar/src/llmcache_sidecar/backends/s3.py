"""Amazon S3 and S3-compatible stores (MinIO, Ceph RGW, R2) through aiobotocore.

aiobotocore is botocore (the AWS SDK core that boto3 uses) on aiohttp: the same
credential chain (environment, shared files, IRSA web identity, instance roles),
request signing and endpoint handling as boto3, without a thread per call. boto3
itself would block the event loop. One client, with one connection pool, per
process; it is created on first use because aiobotocore clients must be entered in
a running loop.

Retries are off: a cache that waits for a retry is slower than the upstream call it
was meant to save. `FailOpen` bounds every call with `timeoutMs`.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from llmcache_sidecar.backends.base import BackendError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_MISSING = {"NoSuchKey", "404", "NotFound"}
_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError)


class S3Store:
    """The `ObjectStore` transport for one S3 bucket."""

    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        addressing_style: str = "auto",
        credentials: tuple[str, str] | None = None,
        timeout: float = 1.0,
        max_connections: int = 32,
    ) -> None:
        self._bucket = bucket
        self._region = region
        self._endpoint_url = endpoint_url
        self._credentials = credentials
        self._config = AioConfig(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            s3={"addressing_style": addressing_style},
        )
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None
        self._lock = asyncio.Lock()

    async def read(self, name: str) -> bytes | None:
        client = await self._s3()
        try:
            response = await client.get_object(Bucket=self._bucket, Key=name)
            async with response["Body"] as body:
                return await body.read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise BackendError(f"s3 get: {exc}") from exc
        except _ERRORS as exc:
            raise BackendError(f"s3 get: {exc}") from exc

    async def write(self, name: str, data: bytes) -> None:
        client = await self._s3()
        try:
            await client.put_object(Bucket=self._bucket, Key=name, Body=data)
        except _ERRORS as exc:
            raise BackendError(f"s3 put: {exc}") from exc

    async def remove(self, name: str) -> bool:
        # DeleteObject answers 204 whether or not the key existed: ask first.
        client = await self._s3()
        try:
            await client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise BackendError(f"s3 head: {exc}") from exc
        except _ERRORS as exc:
            raise BackendError(f"s3 head: {exc}") from exc
        try:
            await client.delete_object(Bucket=self._bucket, Key=name)
        except _ERRORS as exc:
            raise BackendError(f"s3 delete: {exc}") from exc
        return True

    async def check(self) -> None:
        client = await self._s3()
        try:
            await client.head_bucket(Bucket=self._bucket)
        except _ERRORS as exc:
            raise BackendError(f"s3 bucket {self._bucket!r}: {exc}") from exc

    async def aclose(self) -> None:
        async with self._lock:
            self._client = None
            await self._stack.aclose()

    async def _s3(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                session = get_session()
                key_id, secret = self._credentials or (None, None)
                try:
                    self._client = await self._stack.enter_async_context(
                        session.create_client(
                            "s3",
                            region_name=self._region,
                            endpoint_url=self._endpoint_url,
                            aws_access_key_id=key_id,
                            aws_secret_access_key=secret,
                            config=self._config,
                        )
                    )
                except _ERRORS as exc:
                    raise BackendError(f"s3 client: {exc}") from exc
            return self._client


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
