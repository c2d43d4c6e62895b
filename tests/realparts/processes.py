"""Child processes that make one server: started, waited for, paused, stopped.

`Servers.paused()` freezes the processes with SIGSTOP and thaws them with SIGCONT:
to a client that is a server that stopped answering mid-conversation, the harder
kind of outage (a refused connection fails fast; a silent one has to time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "make test installs it (scripts/install-test-servers.sh, apt-get install redis-server)"
START_TIMEOUT_S = 60.0
"""Generous: several engineers' suites share two cores."""


@dataclass
class Servers:
    """A group of child processes that make one server."""

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


def binary(name: str, *candidates: Path) -> str:
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: {INSTALL_HINT}")
    return found


def spawn(args: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server process whose output goes to `log` (read back when it fails to start)."""
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, stdin=subprocess.DEVNULL)


def wait_ready(what: str, ready: Callable[[], bool], processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    """Poll `ready` until it holds; fail with the log's tail if a process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        with contextlib.suppress(OSError):
            if ready():
                return
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}")
        time.sleep(0.1)


def http_answers(port: int, path: str = "/") -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return conn.recv(16).startswith(b"HTTP/")


async def until_healthy(admin_url: str, tries: int = 100, path: str = "/healthz") -> bool:
    """Poll a sidecar process's admin `path` every 0.1 s until it answers 200 (True), at most `tries` times."""
    async with aiohttp.ClientSession() as http:
        for _ in range(tries):
            try:
                async with http.get(f"{admin_url}{path}") as r:
                    if r.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return False
