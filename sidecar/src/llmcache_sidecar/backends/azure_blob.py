"""Azure Blob Storage through azure-storage-blob's asyncio client (on aiohttp).

Credentials, in order: a connection string file (`connectionStringFile`), an account
key file with `accountUrl`, else `DefaultAzureCredential` from the optional
`azure-identity` package (Workload Identity on AKS, managed identity, environment).

The SDK's retries are off (`retry_total=0`): a cache must answer within its budget
or not at all, and `FailOpen` holds that deadline. One client per process, created
on first use inside the running loop.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from llmcache_sidecar.backends.base import BackendError

_ERRORS = (AzureError, OSError)
_PART_BYTES = 2**20


class AzureBlobStore:
    """The `ObjectStore` transport for one blob container."""

    name = "azureBlob"

    def __init__(
        self,
        *,
        container: str,
        account_url: str | None = None,
        connection_string: str | None = None,
        account_key: str | None = None,
        timeout: float = 1.0,
    ) -> None:
        if connection_string is None and account_url is None:
            raise ValueError("azureBlob needs accountUrl or a connection string")
        self._container = container
        self._account_url = account_url
        self._connection_string = connection_string
        self._account_key = account_key
        self._timeout = timeout
        self._client: ContainerClient | None = None
        self._credential: Any = None  # an azure.identity.aio credential, closed with the client
        self._lock = asyncio.Lock()

    async def read(self, name: str) -> bytes | None:
        client = await self._container_client()
        try:
            downloader = await client.download_blob(name)
            return await downloader.readall()
        except ResourceNotFoundError:
            return None
        except _ERRORS as exc:
            raise BackendError(f"azure download: {_short(exc)}") from exc

    async def write(self, name: str, data: bytes) -> None:
        client = await self._container_client()
        try:
            await client.upload_blob(name, data, overwrite=True)
        except _ERRORS as exc:
            raise BackendError(f"azure upload: {_short(exc)}") from exc

    async def remove(self, name: str) -> bool:
        client = await self._container_client()
        try:
            await client.delete_blob(name)
        except ResourceNotFoundError:
            return False
        except _ERRORS as exc:
            raise BackendError(f"azure delete: {_short(exc)}") from exc
        return True

    async def check(self) -> None:
        client = await self._container_client()
        try:
            await client.get_container_properties()
        except _ERRORS as exc:
            raise BackendError(f"azure container {self._container!r}: {_short(exc)}") from exc

    async def aclose(self) -> None:
        async with self._lock:
            client, credential = self._client, self._credential
            self._client = self._credential = None
            if client is not None:
                await client.close()
            if credential is not None:
                await credential.close()

    async def _container_client(self) -> ContainerClient:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> ContainerClient:
        options: dict[str, Any] = {
            # Bodies over 1 MiB go up as 1 MiB blocks and one commit (still atomic for
            # readers): aiohttp copies a larger single body on the event loop.
            "max_single_put_size": _PART_BYTES,
            "max_block_size": _PART_BYTES,
            "retry_total": 0,
            "connection_timeout": self._timeout,
            "read_timeout": self._timeout,
        }
        if self._connection_string is not None:
            return ContainerClient.from_connection_string(self._connection_string, self._container, **options)
        assert self._account_url is not None  # checked in __init__
        credential: Any
        if self._account_key is not None:
            account = urlparse(self._account_url).hostname or ""
            credential = {"account_name": account.split(".")[0], "account_key": self._account_key}
        else:
            try:
                from azure.identity.aio import DefaultAzureCredential
            except ImportError as exc:
                raise BackendError("azureBlob without a key needs azure-identity (llmcache-sidecar[azure])") from exc
            credential = self._credential = DefaultAzureCredential()
        return ContainerClient(self._account_url, self._container, credential=credential, **options)


def _short(exc: BaseException) -> str:
    # Azure errors carry the whole HTTP exchange in str(); the first line says enough.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
