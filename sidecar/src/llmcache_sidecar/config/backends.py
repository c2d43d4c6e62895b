"""Settings of the cache storage: `backend:` and one block per backend type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar.config.fields import ConfigError, check_address, setting

BackendType = Literal["memory", "redis", "dual", "s3", "gcs", "azureBlob", "disk"]
RemoteBackendType = Literal["redis", "s3", "gcs", "azureBlob", "disk"]
S3AddressingStyle = Literal["auto", "virtual", "path"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemorySettings:
    max_bytes: int = setting(
        "maxBytes", "Upper bound of the bytes the in-memory cache holds.", default=256 * 2**20, minimum=1024
    )
    max_entries: int = setting(
        "maxEntries", "Upper bound of the entries the in-memory cache holds.", default=100_000, minimum=1
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SentinelSettings:
    master_name: str = setting("masterName", "Name the Sentinels monitor the master by.", default="mymaster")
    addresses: tuple[str, ...] = setting(
        "addresses", "Sentinel host:port addresses; any that answers tells where the master is.", default=()
    )
    password_file: str | None = setting(
        "passwordFile", "File holding the Sentinels' own password, if they require one.", default=None
    )

    def _check(self, path: str) -> None:
        if not self.addresses:
            raise ConfigError(f"{path}.addresses", "list at least one Sentinel host:port")
        for i, address in enumerate(self.addresses):
            check_address(address, f"{path}.addresses[{i}]")


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""What redis-py's from_url accepts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str = setting(
        "url", "Redis URL: redis://host:port/db, or rediss:// for TLS.", default="redis://127.0.0.1:6379/0"
    )
    password_file: str | None = setting(
        "passwordFile", "File holding the Redis password (a mounted Secret).", default=None
    )
    timeout_ms: int = setting(
        "timeoutMs",
        "Longest time one Redis lookup or write may take; past it the call is a miss.",
        default=50,
        minimum=1,
    )
    max_connections: int = setting("maxConnections", "Size of the connection pool.", default=64, minimum=1)
    cluster: bool = setting(
        "cluster",
        "Redis Cluster: url names any one node; the client learns the others and follows MOVED/ASK redirections.",
        default=False,
    )
    sentinel: SentinelSettings | None = setting(
        "sentinel",
        "Find the master through Redis Sentinel instead of url's host (url's db and TLS still apply).",
        default=None,
    )

    def _check(self, path: str) -> None:
        if not self.url.startswith(REDIS_SCHEMES):
            # The client refuses it only when the backend is built: in a pod, after the config was accepted.
            schemes = ", ".join(REDIS_SCHEMES)
            raise ConfigError(f"{path}.url", f"expected a URL starting with {schemes}; got {self.url!r}")
        if self.cluster and self.sentinel is not None:
            raise ConfigError(f"{path}.sentinel", "cluster and sentinel exclude each other")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Settings:
    bucket: str = setting("bucket", "Bucket that holds the entries (it must exist).", default="")
    prefix: str = setting("prefix", "Key prefix of every object llmcache writes.", default="llmcache/")
    region: str | None = setting("region", "AWS region; the standard AWS chain decides when unset.", default=None)
    endpoint_url: str | None = setting(
        "endpointUrl", "S3-compatible endpoint (MinIO, Ceph, R2, ...); AWS when unset.", default=None
    )
    addressing_style: S3AddressingStyle = setting(
        "addressingStyle", "path for most S3-compatible stores; virtual or auto for AWS.", default="auto"
    )
    access_key_id_file: str | None = setting(
        "accessKeyIdFile",
        "File holding the access key id (a mounted Secret); the standard AWS chain when unset.",
        default=None,
    )
    secret_access_key_file: str | None = setting(
        "secretAccessKeyFile", "File holding the secret access key; required with accessKeyIdFile.", default=None
    )
    timeout_ms: int = setting(
        "timeoutMs", "Longest time one S3 call may take; past it the call is a miss.", default=1000, minimum=1
    )
    max_connections: int = setting("maxConnections", "Size of the HTTP connection pool.", default=32, minimum=1)

    def _check(self, path: str) -> None:
        if (self.access_key_id_file is None) != (self.secret_access_key_file is None):
            raise ConfigError(f"{path}.secretAccessKeyFile", "accessKeyIdFile and secretAccessKeyFile go together")


@dataclass(frozen=True, slots=True, kw_only=True)
class GcsSettings:
    bucket: str = setting("bucket", "Bucket that holds the entries (it must exist).", default="")
    prefix: str = setting("prefix", "Name prefix of every object llmcache writes.", default="llmcache/")
    credentials_file: str | None = setting(
        "credentialsFile",
        "Service-account JSON key file; Application Default Credentials (Workload Identity) when unset.",
        default=None,
    )
    endpoint_url: str | None = setting(
        "endpointUrl",
        "Storage API root for an emulator (no authentication is sent to it); Google when unset.",
        default=None,
    )
    timeout_ms: int = setting(
        "timeoutMs", "Longest time one GCS call may take; past it the call is a miss.", default=1000, minimum=1
    )
    max_connections: int = setting("maxConnections", "Size of the HTTP connection pool.", default=32, minimum=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class AzureBlobSettings:
    container: str = setting("container", "Blob container that holds the entries (it must exist).", default="")
    prefix: str = setting("prefix", "Name prefix of every blob llmcache writes.", default="llmcache/")
    account_url: str | None = setting(
        "accountUrl", "https://<account>.blob.core.windows.net; not needed with connectionStringFile.", default=None
    )
    connection_string_file: str | None = setting(
        "connectionStringFile", "File holding a storage connection string (a mounted Secret).", default=None
    )
    account_key_file: str | None = setting(
        "accountKeyFile", "File holding the account key, used with accountUrl.", default=None
    )
    timeout_ms: int = setting(
        "timeoutMs", "Longest time one Azure call may take; past it the call is a miss.", default=1000, minimum=1
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskSettings:
    path: str = setting(
        "path",
        "Directory that holds the entries (an emptyDir or a PersistentVolume); created if missing.",
        default="/var/cache/llmcache",
    )
    max_bytes: int = setting(
        "maxBytes",
        "Upper bound of the bytes stored files take; least recently used go first.",
        default=2**30,
        minimum=1024,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DualSettings:
    front_ttl: float = setting(
        "frontTtl",
        "Longest time an entry stays in the memory tier; a flush elsewhere is seen within it.",
        default=60.0,
        duration=True,
    )
    l1: Literal["memory"] = setting(
        "l1", "The front tier, in this pod's memory (sized by backend.memory).", default="memory"
    )
    l2: RemoteBackendType = setting(
        "l2", "The shared tier: redis, s3, gcs, azureBlob or disk, configured by its own block.", default="redis"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendSettings:
    type: BackendType = setting(
        "type",
        "Where entries live: memory (this pod), redis (shared), s3, gcs, azureBlob (object storage), "
        "disk (a directory), dual (memory in front of dual.l2).",
        default="memory",
    )
    memory: MemorySettings = setting("memory", "In-memory tier.", factory=MemorySettings)
    redis: RedisSettings = setting("redis", "Redis connection.", factory=RedisSettings)
    s3: S3Settings = setting("s3", "Amazon S3 or an S3-compatible store.", factory=S3Settings)
    gcs: GcsSettings = setting("gcs", "Google Cloud Storage.", factory=GcsSettings)
    azure_blob: AzureBlobSettings = setting("azureBlob", "Azure Blob Storage.", factory=AzureBlobSettings)
    disk: DiskSettings = setting("disk", "A local directory.", factory=DiskSettings)
    dual: DualSettings = setting("dual", "Two-tier settings.", factory=DualSettings)

    def _check(self, path: str) -> None:
        used = self.dual.l2 if self.type == "dual" else self.type
        required = {
            "s3": (self.s3.bucket, "s3.bucket"),
            "gcs": (self.gcs.bucket, "gcs.bucket"),
            "azureBlob": (self.azure_blob.container, "azureBlob.container"),
        }
        if used in required and not required[used][0]:
            sub = f"{path}.{required[used][1]}" if path else required[used][1]
            raise ConfigError(sub, f"required when the {used} backend is used")
        azure = self.azure_blob
        if used == "azureBlob" and azure.account_url is None and azure.connection_string_file is None:
            sub = f"{path}.azureBlob.accountUrl" if path else "azureBlob.accountUrl"
            raise ConfigError(sub, "set accountUrl or connectionStringFile")
