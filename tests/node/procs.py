"""The node's processes: started with a pid file each, stopped by that pid only.

A pid file records the pid and the executable. `stop` signals a pid only while
/proc/<pid>/exe is still that executable, so a pid reused by someone else's process
after a crash is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 15.0
_children: dict[int, subprocess.Popen[bytes]] = {}
"""The processes this process started, kept until stopped (a dropped running Popen warns)."""


@dataclass(frozen=True)
class Tracked:
    name: str
    pid: int
    exe: str


def start(
    name: str,
    argv: Sequence[str],
    *,
    pids: Path,
    logs: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session, output appended to logs/<name>.log, pid in pids/<name>.json."""
    pids.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    exe = os.path.realpath(f"/proc/{proc.pid}/exe")
    (pids / f"{name}.json").write_text(json.dumps({"pid": proc.pid, "exe": exe}))
    _children[proc.pid] = proc
    return proc


def tracked(pids: Path) -> list[Tracked]:
    found = []
    for path in sorted(pids.glob("*.json")) if pids.is_dir() else []:
        data = json.loads(path.read_text())
        found.append(Tracked(path.stem, int(data["pid"]), str(data["exe"])))
    return found


def alive(proc: Tracked) -> bool:
    """The process is running and is still the executable that was started."""
    try:
        exe = os.path.realpath(f"/proc/{proc.pid}/exe")
    except OSError:
        return False
    if not Path(f"/proc/{proc.pid}").exists():
        return False
    state = _state(proc.pid)
    return exe == proc.exe and state not in ("Z", "X", None)


def stop(name: str, pids: Path, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when something was stopped."""
    path = pids / f"{name}.json"
    if not path.exists():
        return False
    data = json.loads(path.read_text())
    proc = Tracked(name, int(data["pid"]), str(data["exe"]))
    stopped = False
    if alive(proc):
        _signal(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(proc) and time.monotonic() < deadline:
            _reap(proc.pid)
            time.sleep(0.1)
        if alive(proc):
            _signal(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while alive(proc) and time.monotonic() < deadline:
                _reap(proc.pid)
                time.sleep(0.1)
        stopped = True
    child = _children.pop(proc.pid, None)
    if child is not None:
        child.wait(timeout=5)  # gone by now: this only collects its exit status
    _reap(proc.pid)
    path.unlink()
    return stopped


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # Our own child (same process that started it) becomes a zombie until waited for.
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]
