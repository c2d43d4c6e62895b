"""The decisions stay pure: reconcile, injection, spec and patching import neither kopf nor a client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmcache_operator

PACKAGE = Path(llmcache_operator.__file__).parent
PURE = ["spec", "reconcile", "injection", "patching", "crd"]
FRAMEWORKS = ("kopf", "kubernetes", "aiohttp")


def imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_framework_or_client(module: str) -> None:
    assert not {name for name in imported(module) if name.split(".")[0] in FRAMEWORKS}


def test_only_k8s_imports_the_kubernetes_client() -> None:
    users = {p.stem for p in PACKAGE.glob("*.py") if any(n.startswith("kubernetes") for n in imported(p.stem))}
    assert users == {"k8s"}


def test_the_package_is_never_importable_as_operator() -> None:
    assert PACKAGE.name == "llmcache_operator"
    assert not (PACKAGE.parent / "operator").exists()
