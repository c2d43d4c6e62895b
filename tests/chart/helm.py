"""Rendering the chart with the pinned helm binaries, and checking what comes out.

Real parts: helm 3.17.3 and 4.3.1 (scripts/fetch-tools.sh), the Kubernetes OpenAPI
schemas shipped by kubernetes-validate, and the committed LLMCache CRD. Nothing here
talks to a cluster: `helm template` renders a fresh install (its `lookup` finds nothing).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "llmcache"
TOOLS = ROOT / ".tools"
CRD_FILE = ROOT / "crds" / "llmcache.dev_llmcaches.yaml"
HELMS = {"helm3": "v3.17.3", "helm4": "v4.3.1"}
KUBE_VERSIONS = [f"1.{minor}.0" for minor in range(28, 36)]
NAMESPACE = "llmcache-system"
RELEASE = "llmc"
HELM_TIMEOUT_S = 120

# Kinds whose schema is not in kubernetes-validate: checked by CRD schema (ours) or by shape (others').
OWN_GROUP = "llmcache.dev"
FOREIGN_GROUPS = ("cert-manager.io", "monitoring.coreos.com")

Obj = dict[str, Any]


class HelmError(RuntimeError):
    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")
        self.stderr = stderr


@dataclass(frozen=True)
class Helm:
    """One helm binary with a scratch HOME, so that it neither reads nor writes the user's."""

    name: str
    binary: Path
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        env.pop("KUBECONFIG", None)
        return subprocess.run(
            [str(self.binary), *args], env=env, capture_output=True, text=True, timeout=HELM_TIMEOUT_S, check=False
        )

    def template_text(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        namespace: str = NAMESPACE,
        kube_version: str | None = None,
        extra: Iterable[str] = (),
        release: str = RELEASE,
    ) -> str:
        args = ["template", release, str(CHART), "--namespace", namespace, *extra]
        if kube_version:
            args += ["--kube-version", kube_version]
        if values:
            values_file = self.home / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
            values_file.write_text(json.dumps(values))
            args += ["--values", str(values_file)]
        result = self.run(*args)
        if result.returncode != 0:
            raise HelmError(args, result.stderr)
        return result.stdout

    def template(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Obj]:
        return [doc for doc in yaml.safe_load_all(self.template_text(values, **kwargs)) if doc]


def helm_binary(name: str) -> Path:
    return TOOLS / name


def crd() -> Obj:
    loaded: Obj = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    return loaded


def llmcache_schema() -> Obj:
    (version,) = crd()["spec"]["versions"]
    schema: Obj = version["schema"]["openAPIV3Schema"]
    return schema


def group_of(obj: Obj) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def validation_errors(obj: Obj, kube_version: str) -> list[str]:
    """What is wrong with `obj` for `kube_version` (built-in kinds) or for our CRD (LLMCache)."""
    group = group_of(obj)
    if group == OWN_GROUP:
        validator = jsonschema.Draft7Validator(llmcache_schema())
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    if group in FOREIGN_GROUPS:
        return []  # no offline schema: tests/chart/test_render.py checks their shape instead
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc)]
    return []


def by_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: Iterable[Obj], kind: str, name_suffix: str = "") -> Obj:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def pod_specs(objs: Iterable[Obj]) -> list[tuple[str, Obj]]:
    """(workload name, pod spec) of every workload the chart renders."""
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]


def env_of(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}
