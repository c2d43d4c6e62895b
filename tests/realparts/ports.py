"""Free loopback ports: bind to port 0 and read back what the kernel chose.

A port is free when it is picked, not necessarily when a server binds it a moment later;
every launcher here waits for its server to answer and fails loudly if it does not.
"""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; with_bus also keeps port + 10000 free (Redis Cluster's bus)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind((LOOPBACK, port + 10000))
                return port
    raise RuntimeError("no free port pair for a cluster node")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays open until all are picked, so none repeats."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports
