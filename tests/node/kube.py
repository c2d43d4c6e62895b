"""kubectl and helm against the test node, as a user runs them, plus the waits tests need.

The pinned kubectl (.tools/kubectl, 1.31) is the client; kubectl 1.20 (built with the node)
is there for what depends on the client's version. Helm gets a scratch HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.node.layout import REPO_ROOT, Layout

KUBECTL = REPO_ROOT / ".tools" / "kubectl"
HELM = REPO_ROOT / ".tools" / "helm3"
TIMEOUT_S = 120.0
T = TypeVar("T")


class KubeError(AssertionError):
    pass


@dataclass(frozen=True)
class Kube:
    layout: Layout
    home: Path
    """Scratch HOME for helm and kubectl's caches."""

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig("admin")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.home / "helm-config"),
            "HELM_DATA_HOME": str(self.home / "helm-data"),
        }

    def run(
        self, binary: Path, *args: str, input: str | None = None, timeout: float = TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args],
            env=self._env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def kubectl(self, *args: str, input: str | None = None, timeout: float = TIMEOUT_S, binary: Path = KUBECTL) -> str:
        result = self.run(binary, *args, input=input, timeout=timeout)
        if result.returncode != 0:
            raise KubeError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def helm(self, *args: str, timeout: float = 300) -> str:
        result = self.run(HELM, *args, timeout=timeout)
        if result.returncode != 0:
            raise KubeError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def get(self, kind: str, name: str | None = None, namespace: str | None = None, selector: str = "") -> Any:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args))

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", namespace=namespace, selector=selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def exec_python(self, namespace: str, pod: str, script: str, *args: str, container: str = "app") -> Any:
        """Run `script` with the container's python; its last stdout line is JSON."""
        out = self.kubectl(
            "exec", "-n", namespace, pod, "-c", container, "--", "python", "-c", script, *args, timeout=180
        )
        return json.loads(out.strip().splitlines()[-1])

    def dump(self, directory: Path, namespaces: Iterable[str] | None = None) -> None:
        """What to read after a failure: pods, describe, events, every container's log."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, args in {
            "pods.txt": ["get", "pods", "-A", "-o", "wide"],
            "describe-pods.txt": ["describe", "pods", "-A"],
            "events.txt": ["get", "events", "-A", "--sort-by=.lastTimestamp"],
            "llmcaches.yaml": ["get", "llmcaches", "-A", "-o", "yaml"],
            "describe-llmcaches.txt": ["describe", "llmcaches", "-A"],
        }.items():
            result = self.run(KUBECTL, *args, timeout=60)
            (directory / name).write_text(result.stdout + result.stderr)
        pods = json.loads(self.run(KUBECTL, "get", "pods", "-A", "-o", "json", timeout=60).stdout or '{"items": []}')
        for pod in pods["items"]:
            meta = pod["metadata"]
            if namespaces is not None and meta["namespace"] not in namespaces:
                continue
            spec = pod["spec"]
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                for previous in (False, True):
                    args = ["logs", "-n", meta["namespace"], meta["name"], "-c", container["name"]]
                    result = self.run(KUBECTL, *args, *(["--previous"] if previous else []), timeout=60)
                    if result.stdout:
                        suffix = ".previous" if previous else ""
                        path = directory / f"{meta['namespace']}.{meta['name']}.{container['name']}{suffix}.log"
                        path.write_text(result.stdout)


def eventually(check: Callable[[], T | None], what: str, timeout: float = TIMEOUT_S, every: float = 1.0) -> T:
    """Poll `check` (bounded) until it returns something truthy; exceptions count as not yet."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except (KubeError, KeyError, IndexError, TypeError, ValueError) as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}; last: {str(last)[-2000:]}")
        time.sleep(every)
