"""`kubectl get llmcaches -A` shows what each cache is worth: real apiserver, real Redis, real sidecars.

Real: the kube-apiserver 1.20 and etcd (the CRD's printer columns are computed by the
server), kubectl, the operator (`python -m llmcache_operator`), a password-protected
redis-server, and several `llmcache-sidecar` processes standing for the pods of one
cache (the control plane has no kubelet: the sidecars run here, configured as the
operator configures them). The provider is the fake one (tests/fakes/provider.py), in a
process of its own.

What must hold: the numbers are the sum of every pod's traffic; a pod that dies keeps
what it reported (and loses at most its last interval); an operator that restarts
shows the same numbers and moves on; a memory cache says where its numbers are.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e_k8s.test_operator_e2e import ROOT, llmcache, namespace, operator_process, wait_until
from tests.k8s.controlplane import ControlPlane, stop_process
from tests.realparts import RedisServer, free_port, make_tls
from tests.realparts import redis as real_redis

pytestmark = pytest.mark.e2e_k8s

SHARED_NS, LOCAL_NS = "savings-team", "savings-local"
PASSWORD = "savings-redis-password"
COMMAND = str(Path(sys.executable).with_name("llmcache-sidecar"))


@contextlib.contextmanager
def fake_provider() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.provider", "--port", "0", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        proc.stdout.close()


class Pod:
    """One pod's sidecar: the real command, configured like the operator's ConfigMap, for one cache."""

    def __init__(self, workdir: Path, name: str, provider: str, redis: RedisServer, interval: str) -> None:
        self.port, self.admin = free_port(), free_port()
        secret = workdir / f"{name}-password"
        secret.write_text(PASSWORD)
        config = workdir / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "listen": f"127.0.0.1:{self.port}",
                    "admin": f"127.0.0.1:{self.admin}",
                    "namespace": SHARED_NS,  # the cache namespace: the Kubernetes one by default
                    "backend": {"type": "redis", "redis": {"url": redis.url, "passwordFile": str(secret)}},
                    "providers": {"openai": {"upstream": provider}},
                    "telemetry": {"savingsInterval": interval},
                }
            )
        )
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([COMMAND, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._ready, f"sidecar {name} serves")
        self.requests = 0
        self.hits = 0

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def ask(self, prompt: str) -> str:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/openai/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-savings"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            r.read()
            status = r.headers["Cache-Status"]
        self.requests += 1
        self.hits += status.startswith("llmcache; hit")
        return str(status)

    def traffic(self, tag: str, misses: int, hits_each: int) -> None:
        """`misses` new questions, each asked again `hits_each` times once it is stored."""
        for i in range(misses):
            self.ask(f"{tag} question {i}")
            for _ in range(hits_each):
                wait_until(lambda: self.ask(f"{tag} question {i}").startswith("llmcache; hit"), "a hit")  # noqa: B023

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)


def savings(plane: ControlPlane, name: str, ns: str) -> dict[str, Any]:
    got = plane.kubectl("get", "llmc", name, "-n", ns, "-o", "json")
    assert got.returncode == 0, got.stderr
    found: dict[str, Any] = json.loads(got.stdout).get("status", {}).get("savings") or {}
    return found


def until_savings(plane: ControlPlane, requests: int, hits: int, after: str = "") -> dict[str, Any]:
    """status.savings of the shared cache once it counts `requests` and `hits`, computed after `after`."""

    def check() -> dict[str, Any] | None:
        found = savings(plane, "shared", SHARED_NS)
        counted = (found.get("requests"), found.get("hits")) == (requests, hits)
        return found if counted and found.get("computedAt", "") > after else None

    found: dict[str, Any] = wait_until(check, f"savings of {requests} requests, {hits} hits after {after!r}")
    return found


def table(plane: ControlPlane) -> dict[str, dict[str, str]]:
    """`kubectl get llmcaches -A` as the server prints it: each row (namespace/name) by column header.

    Columns are cut where the header's are: kubectl pads each column with at least three
    spaces, and a header may hold one (HIT RATIO).
    """
    got = plane.kubectl("get", "llmcaches", "-A")
    assert got.returncode == 0, got.stderr
    header, *rows = got.stdout.splitlines()
    starts = [0] + [m.end() for m in re.finditer(r" {3,}", header)]
    heads = cut(header, starts)
    return {
        f"{cells['NAMESPACE']}/{cells['NAME']}": cells
        for cells in (dict(zip(heads, cut(row, starts), strict=True)) for row in rows)
    }


def cut(line: str, starts: list[int]) -> list[str]:
    return [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> ControlPlane:
    applied = control_plane.kubectl("apply", "-f", str(ROOT / "crds"))
    assert applied.returncode == 0, applied.stderr
    established = control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/llmcaches.llmcache.dev"
    )
    assert established.returncode == 0, established.stderr
    for ns in (SHARED_NS, LOCAL_NS):
        created = control_plane.kubectl("apply", "-f", "-", input=json.dumps(namespace(ns, {})))
        assert created.returncode == 0, created.stderr
    return control_plane


def test_kubectl_get_shows_each_caches_hit_ratio_and_savings_through_pod_deaths_and_an_operator_restart(
    plane: ControlPlane, tmp_path: Path
) -> None:
    tls = make_tls(tmp_path / "tls")
    servers = contextlib.ExitStack()
    redis = servers.enter_context(real_redis(tmp_path, password=PASSWORD))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "redis", "namespace": SHARED_NS, "labels": {"llmcache.dev/usable": "true"}},
        "stringData": {"password": PASSWORD},
    }
    shared = {
        "backend": {
            "type": "redis",
            "redis": {"url": redis.url, "passwordSecretRef": {"name": "redis", "key": "password"}},
        }
    }
    for obj in (secret, llmcache("shared", SHARED_NS, shared), llmcache("local", LOCAL_NS, {})):
        applied = plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
        assert applied.returncode == 0, applied.stderr
    fast = {"LLMCACHE_OPERATOR_SAVINGS_INTERVAL": "1"}
    pods: list[Pod] = []
    try:
        with fake_provider() as provider:
            with operator_process(plane, tls, tmp_path, **fast):
                # Many pods of one cache, each adding what it saves every 200 ms.
                pods = [Pod(tmp_path, f"pod-{i}", provider, redis, "200ms") for i in range(3)]
                for i, pod in enumerate(pods):
                    pod.traffic(f"p{i}", misses=2, hits_each=2 + i)
                first = until_savings(plane, sum(p.requests for p in pods), sum(p.hits for p in pods))
                assert first["window"] == "1h" and "message" not in first  # a merge patch of null removes it
                assert first["hitRatio"] == round(first["hits"] / first["requests"], 4)
                assert first["tokensSaved"] > 0 and first["costSavedUSD"] > 0

                # A pod that dies keeps what it reported; one killed before its report loses it (one interval).
                pods[2].kill()
                doomed = Pod(tmp_path, "doomed", provider, redis, "1h")
                doomed.traffic("doomed", misses=1, hits_each=3)
                doomed.kill()
                pods[0].traffic("after-death", misses=1, hits_each=1)
                second = until_savings(
                    plane, sum(p.requests for p in pods), sum(p.hits for p in pods), first["computedAt"]
                )

                rows = table(plane)
                row = rows[f"{SHARED_NS}/shared"]
                assert row["HIT RATIO"] == f"{second['hitRatio']}".rstrip("0").rstrip(".")
                assert row["TOKENS SAVED"] == str(second["tokensSaved"])
                assert float(row["USD SAVED"]) == second["costSavedUSD"]
                local = rows[f"{LOCAL_NS}/local"]
                assert (local["HIT RATIO"], local["TOKENS SAVED"], local["USD SAVED"]) == ("", "", "")  # no numbers

            # The operator is down; the pods go on saving.
            pods[1].traffic("operator-down", misses=1, hits_each=2)
            with operator_process(plane, tls, tmp_path, **fast):
                third = until_savings(
                    plane, sum(p.requests for p in pods), sum(p.hits for p in pods), second["computedAt"]
                )
                assert third["hits"] > second["hits"]
                message = savings(plane, "local", LOCAL_NS)["message"]
                assert message.startswith("The memory backend keeps no shared counts")
    finally:
        for pod in pods:
            pod.stop()
        for kind, name, ns in (
            ("llmc", "shared", SHARED_NS),
            ("llmc", "local", LOCAL_NS),
            ("secret", "redis", SHARED_NS),
        ):
            plane.kubectl("delete", kind, name, "-n", ns, "--ignore-not-found", "--wait=false")
        servers.close()
