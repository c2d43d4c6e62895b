"""Debian's `redis-server`: standalone (optionally with a password), Sentinel, and a Cluster
made by `redis-cli --cluster create`. Nothing here is a fake."""

from __future__ import annotations

import contextlib
import functools
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.realparts.ports import free_port
from tests.realparts.processes import Servers, binary, spawn, wait_ready


@dataclass
class RedisServer(Servers):
    """A redis-server on loopback: its port, its URL, and the password it wants (if any)."""

    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def says(port: int, *command: str) -> bytes:
    """One RESP command over a plain socket; the raw reply."""
    payload = f"*{len(command)}\r\n".encode() + b"".join(
        f"${len(part.encode())}\r\n{part}\r\n".encode() for part in command
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(payload)
        return conn.recv(65536)


def _answers(port: int) -> bool:
    # A server that wants a password answers NOAUTH: it is up all the same.
    return says(port, "PING").startswith((b"+PONG", b"-NOAUTH"))


def _args(port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        binary("redis-server"),
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--protected-mode", "no", *extra,
    ]  # fmt: skip


@contextlib.contextmanager
def redis(workdir: Path, *, password: str | None = None, port: int | None = None) -> Iterator[RedisServer]:
    """A redis-server without persistence on `port` (a free one by default), answering when this yields."""
    port = port or free_port()
    log = workdir / f"redis-{port}.log"
    extra = ("--requirepass", password) if password else ()
    server = RedisServer([spawn(_args(port, workdir, *extra), log)], [port], password)
    try:
        wait_ready("redis-server", functools.partial(_answers, port), server.processes, log)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_cluster(workdir: Path, nodes: int = 3) -> Iterator[Servers]:
    """`nodes` masters, no replicas, slots spread by `redis-cli --cluster create`."""
    servers = Servers()
    try:
        for _ in range(nodes):
            port = free_port(with_bus=True)
            node_dir = workdir / f"node-{port}"
            node_dir.mkdir()
            args = _args(port, node_dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                         "--cluster-node-timeout", "2000")  # fmt: skip
            servers.processes.append(spawn(args, workdir / f"redis-{port}.log"))
            servers.ports.append(port)
        for port in servers.ports:
            wait_ready(
                "cluster node", functools.partial(_answers, port), servers.processes, workdir / f"redis-{port}.log"
            )
        addresses = [f"127.0.0.1:{p}" for p in servers.ports]
        subprocess.run(
            [binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def cluster_ok() -> bool:
            return all(b"cluster_state:ok" in says(p, "CLUSTER", "INFO") for p in servers.ports)

        wait_ready("redis cluster", cluster_ok, servers.processes, workdir / f"redis-{servers.port}.log")
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def redis_sentinel(workdir: Path, master_name: str = "mymaster") -> Iterator[tuple[RedisServer, Servers]]:
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
        sentinel = Servers([spawn([binary("redis-server"), str(conf), "--sentinel"], log)], [port])
        try:

            def ready() -> bool:
                reply = says(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", master_name)
                return str(master.port).encode() in reply

            wait_ready("redis sentinel", ready, sentinel.processes, log)
            yield master, sentinel
        finally:
            sentinel.stop()
