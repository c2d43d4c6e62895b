"""A cache in a local directory: an emptyDir for a pod, a PersistentVolume to survive restarts.

Layout under `path`:

    entries/<first two hex>/<sha256 of the key>   envelope: expiry + entry bytes
    epochs/<namespace>                           the flush epoch, ASCII
    tmp/                                         files being written

Every write goes to a fresh file in `tmp/` and is then renamed over its target
(`os.replace`, atomic on POSIX within one filesystem), so a reader, in this process
or another, sees the old file or the new one, never half of one. Nothing is fsynced:
after a power loss an entry may read back truncated, which decodes as a miss.

All file I/O, and the encoding and decoding of entries that goes with it, runs in
worker threads through `asyncio.to_thread`, never on the event loop.

The byte bound is kept by this process with an in-memory LRU index, loaded from the
directory on first use (files ordered by modification time, which a hit refreshes),
so the least recently used entries go first across restarts too. Limits: another
process writing to the same directory is not counted in this one's bound (give each
writer its own directory), and sizes are file sizes, not blocks on disk.

Leases are always granted: coalescing across pods needs a shared backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from llmcache_sidecar.backends import envelope
from llmcache_sidecar.backends.base import BackendError, BackendStats, ListingUnsupported
from llmcache_sidecar.entry import CachedResponse, EntryFormatError

logger = logging.getLogger(__name__)
_STALE_TMP_SECONDS = 600.0


class DiskCache:
    """Entries as files, bounded by bytes, least recently used evicted first."""

    name = "disk"
    self_bounded = False  # a stuck volume blocks a thread; FailOpen bounds the wait for it

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int) -> None:
        self._root = Path(path)
        self._entries = self._root / "entries"
        self._epochs = self._root / "epochs"
        self._tmp = self._root / "tmp"
        self._max_bytes = max_bytes
        self._index: OrderedDict[str, int] = OrderedDict()  # file name -> size, coldest first
        self._bytes = 0
        self._loading: asyncio.Task[None] | None = None

    def path_of(self, key: str) -> Path:
        """The file that holds the entry for `key`."""
        return self._entry_path(_file_name(key))

    async def get(self, key: str) -> CachedResponse | None:
        await self._ready()
        name = _file_name(key)
        try:
            value = await asyncio.to_thread(self._read_entry, name)
        except OSError as exc:
            raise BackendError(f"disk read: {exc}") from exc
        if value is None:
            self._forget(name)
            return None
        size = value[1]
        if name in self._index:
            self._index.move_to_end(name)
        else:  # written by an earlier or another process since the index was loaded
            self._account(name, size)
        return value[0]

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        if ttl <= 0:
            return
        await self._ready()
        name = _file_name(key)
        try:
            size = await asyncio.to_thread(self._write_entry, name, value, time.time() + ttl)
        except OSError as exc:
            raise BackendError(f"disk write: {exc}") from exc
        if size is None:
            return
        self._account(name, size)
        await self._evict()

    async def delete(self, key: str) -> bool:
        await self._ready()
        name = _file_name(key)
        self._forget(name)
        try:
            return await asyncio.to_thread(_unlink, self._entry_path(name))
        except OSError as exc:
            raise BackendError(f"disk delete: {exc}") from exc

    async def get_epoch(self, namespace: str) -> int:
        try:
            return await asyncio.to_thread(self._read_epoch, namespace)
        except OSError as exc:
            raise BackendError(f"disk epoch: {exc}") from exc

    async def bump_epoch(self, namespace: str) -> int:
        try:
            return await asyncio.to_thread(self._bump_epoch, namespace)
        except OSError as exc:
            raise BackendError(f"disk epoch: {exc}") from exc

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        return True

    async def release_lease(self, key: str) -> None:
        return None

    async def keys(self, prefix: str, limit: int) -> list[str]:
        raise ListingUnsupported("the disk backend stores entries under hashed names: it cannot list keys")

    async def stats(self) -> BackendStats:
        await self._ready()
        return BackendStats(entries=len(self._index), bytes=self._bytes)

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self._check_writable)
        except OSError as exc:
            raise BackendError(f"disk {self._root}: {exc}") from exc

    async def aclose(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loading
        self._loading = None

    # -- index (event loop) --

    async def _ready(self) -> None:
        """Load the index once. Callers share one task, so a caller that times out
        (FailOpen) does not abandon the scan: the next caller finds it further on."""
        task = self._loading
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._loading = asyncio.get_running_loop().create_task(self._load())
        try:
            await asyncio.shield(task)
        except OSError as exc:
            raise BackendError(f"disk index: {exc}") from exc

    async def _load(self) -> None:
        files = await asyncio.to_thread(self._scan)
        self._index.clear()
        self._bytes = 0
        for name, size in files:
            self._account(name, size)
        await self._evict()
        logger.info("disk cache %s: %d entries, %d bytes", self._root, len(self._index), self._bytes)

    def _account(self, name: str, size: int) -> None:
        self._bytes += size - self._index.pop(name, 0)
        self._index[name] = size

    def _forget(self, name: str) -> None:
        self._bytes -= self._index.pop(name, 0)

    async def _evict(self) -> None:
        victims: list[Path] = []
        while self._bytes > self._max_bytes and self._index:
            name, size = self._index.popitem(last=False)
            self._bytes -= size
            victims.append(self._entry_path(name))
        if victims:
            try:
                await asyncio.to_thread(_unlink_all, victims)
            except OSError as exc:
                raise BackendError(f"disk evict: {exc}") from exc

    # -- file work (worker threads only) --

    def _entry_path(self, name: str) -> Path:
        return self._entries / name[:2] / name

    def _scan(self) -> list[tuple[str, int]]:
        """Every entry file with its size, coldest first; stale temp files removed."""
        found: list[tuple[float, str, int]] = []
        if self._entries.is_dir():
            for shard in os.scandir(self._entries):
                if not shard.is_dir():
                    continue
                for item in os.scandir(shard.path):
                    with contextlib.suppress(FileNotFoundError):
                        st = item.stat()
                        found.append((st.st_mtime, item.name, st.st_size))
        if self._tmp.is_dir():
            cutoff = time.time() - _STALE_TMP_SECONDS
            for item in os.scandir(self._tmp):
                with contextlib.suppress(FileNotFoundError):
                    if item.stat().st_mtime < cutoff:
                        os.unlink(item.path)
        found.sort()
        return [(name, size) for _, name, size in found]

    def _read_entry(self, name: str) -> tuple[CachedResponse, int] | None:
        path = self._entry_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            value = envelope.unpack(data, time.time())
        except EntryFormatError as exc:
            logger.debug("disk: unreadable entry file removed: %s", exc)
            value = None
        if value is None:  # expired or unreadable: it will never be served, so it goes
            _unlink(path)
            return None
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)  # the mtime is the LRU order a restart reads back
        return value, len(data)

    def _write_entry(self, name: str, value: CachedResponse, expires_at: float) -> int | None:
        data = envelope.pack(value, expires_at)
        if len(data) > self._max_bytes:
            return None
        path = self._entry_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._replace(path, data)
        return len(data)

    def _replace(self, path: Path, data: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise

    def _read_epoch(self, namespace: str) -> int:
        try:
            text = (self._epochs / namespace).read_text(encoding="ascii")
        except FileNotFoundError:
            return 0
        try:
            return int(text)
        except ValueError as exc:
            raise BackendError(f"epoch file of {namespace!r} is not a number") from exc

    def _bump_epoch(self, namespace: str) -> int:
        # flock makes read-add-write atomic between processes sharing the directory.
        self._epochs.mkdir(parents=True, exist_ok=True)
        with open(self._epochs / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            epoch = self._read_epoch(namespace) + 1
            self._replace(self._epochs / namespace, str(epoch).encode("ascii"))
        return epoch

    def _check_writable(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        if not os.access(self._root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self._root} is not writable")


def _file_name(key: str) -> str:
    # Keys may be long or hold characters a filesystem dislikes; a digest is neither.
    return hashlib.sha256(key.encode()).hexdigest()


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        _unlink(path)
