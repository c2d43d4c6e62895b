"""Real storage servers on free loopback ports, started and stopped by the tests.

Each helper is a context manager that starts one server (or a group) as child
processes, waits until it answers, and stops it on exit. Nothing here is a fake:
Debian's `redis-server` (standalone, Sentinel, and a Cluster made by
`redis-cli --cluster create`), moto's S3 server, gcp-storage-emulator, and
Microsoft's azurite. `scripts/install-test-servers.sh` installs what pip does not.

`Servers.paused()` freezes the processes with SIGSTOP and thaws them with SIGCONT:
to a client that is a server that stopped answering mid-conversation, the harder
kind of outage (a refused connection fails fast; a silent one has to time out).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run scripts/install-test-servers.sh"


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; with_bus also keeps port + 10000 free (Redis Cluster's bus)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port + 10000))
                return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Servers:
    """A group of child processes that make one backend's server."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.ports[0]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        for p in self.processes:
            os.kill(p.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for p in self.processes:
                os.kill(p.pid, signal.SIGCONT)

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
        for p in self.processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _binary(name: str, *candidates: Path) -> str:
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: {INSTALL_HINT}")
    return found


def _spawn(args: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, stdin=subprocess.DEVNULL)


def _wait(what: str, ready: Callable[[], bool], processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError):
            if ready():
                return
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}")
        time.sleep(0.1)


def _redis_says(port: int, *command: str) -> bytes:
    """One RESP command over a plain socket; the raw reply."""
    payload = f"*{len(command)}\r\n".encode() + b"".join(
        f"${len(part.encode())}\r\n{part}\r\n".encode() for part in command
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(payload)
        return conn.recv(65536)


def _pongs(port: int) -> bool:
    return _redis_says(port, "PING").startswith(b"+PONG")


def _http_answers(port: int, path: str = "/") -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return conn.recv(16).startswith(b"HTTP/")


def _redis_args(port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        _binary("redis-server"),
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--protected-mode", "no", *extra,
    ]  # fmt: skip


@contextlib.contextmanager
def redis(workdir: Path) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"redis-{port}.log"
    servers = Servers([_spawn(_redis_args(port, workdir), log)], [port])
    try:
        _wait("redis-server", functools.partial(_pongs, port), servers.processes, log)
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def redis_cluster(workdir: Path, nodes: int = 3) -> Iterator[Servers]:
    """`nodes` masters, no replicas, slots spread by `redis-cli --cluster create`."""
    servers = Servers()
    try:
        for _ in range(nodes):
            port = free_port(with_bus=True)
            node_dir = workdir / f"node-{port}"
            node_dir.mkdir()
            args = _redis_args(port, node_dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", "2000")  # fmt: skip
            servers.processes.append(_spawn(args, workdir / f"redis-{port}.log"))
            servers.ports.append(port)
        for port in servers.ports:
            _wait("cluster node", functools.partial(_pongs, port), servers.processes, workdir / f"redis-{port}.log")
        addresses = [f"127.0.0.1:{p}" for p in servers.ports]
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def cluster_ok() -> bool:
            return all(b"cluster_state:ok" in _redis_says(p, "CLUSTER", "INFO") for p in servers.ports)

        _wait("redis cluster", cluster_ok, servers.processes, workdir / f"redis-{servers.port}.log")
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def redis_sentinel(workdir: Path, master_name: str = "mymaster") -> Iterator[tuple[Servers, Servers]]:
    """A master and one Sentinel watching it: (master, sentinel)."""
    with redis(workdir) as master:
        port = free_port()
        conf = workdir / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {workdir}\n"
            f"sentinel monitor {master_name} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {master_name} 60000\n"
        )
        log = workdir / f"sentinel-{port}.log"
        sentinel = Servers([_spawn([_binary("redis-server"), str(conf), "--sentinel"], log)], [port])
        try:

            def ready() -> bool:
                reply = _redis_says(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", master_name)
                return str(master.port).encode() in reply

            _wait("redis sentinel", ready, sentinel.processes, log)
            yield master, sentinel
        finally:
            sentinel.stop()


@contextlib.contextmanager
def moto_s3(workdir: Path) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"moto-{port}.log"
    servers = Servers([_spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)], [port])
    try:
        _wait("moto server", lambda: _http_answers(port, "/moto-api/"), servers.processes, log)
        yield servers
    finally:
        servers.stop()


# gcp-storage-emulator serves one connection at a time (http.server.HTTPServer) with the standard
# listen backlog of 5. The contract's concurrent cases open more connections than that, and on a
# busy machine the kernel dropped the overflow: a write failed with "Connection reset by peer" in
# about one run of two. A real GCS endpoint accepts them all, so the emulator gets a deeper backlog.
GCS_LAUNCH = (
    "import http.server, sys; http.server.HTTPServer.request_queue_size = 128; "
    "from gcp_storage_emulator.__main__ import main; sys.argv[0] = 'gcp-storage-emulator'; sys.exit(main())"
)


@contextlib.contextmanager
def gcs_emulator(workdir: Path, bucket: str) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"gcs-{port}.log"
    args = [sys.executable, "-c", GCS_LAUNCH, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
            "--quiet", "--default-bucket", bucket]  # fmt: skip
    servers = Servers([_spawn(args, log, cwd=workdir)], [port])
    try:
        _wait("gcp-storage-emulator", lambda: _http_answers(port, "/storage/v1/b"), servers.processes, log)
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def azurite(workdir: Path) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"azurite-{port}.log"
    exe = _binary("azurite-blob", ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob")
    args = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
            "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"]  # fmt: skip
    servers = Servers([_spawn(args, log, cwd=workdir)], [port])
    try:
        _wait("azurite", lambda: _http_answers(port, "/devstoreaccount1?comp=list"), servers.processes, log)
        yield servers
    finally:
        servers.stop()


# The well-known development account of azurite and the Azure storage emulator:
# public, documented, and accepted by nothing but an emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
