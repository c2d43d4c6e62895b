"""Smoke test: the real apiserver enforces a CRD's openAPIV3Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlane

pytestmark = pytest.mark.e2e_k8s

CRD_NAME = "widgets.example.dev"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "string", "enum": ["small", "large"]}
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, size: str) -> str:
    return json.dumps(
        {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"size": size},
        }
    )


@pytest.fixture(scope="module")
def widgets(control_plane: ControlPlane) -> ControlPlane:
    applied = control_plane.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    assert applied.returncode == 0, applied.stderr
    established = control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}"
    )
    assert established.returncode == 0, established.stderr
    return control_plane


def test_server_rejects_enum_violation(widgets: ControlPlane) -> None:
    # --validate=false: kubectl would otherwise reject it client-side (a 1.20
    # server has no server-side field validation), and we want the server's verdict.
    result = widgets.kubectl("apply", "--validate=false", "-f", "-", input=widget("bad", "huge"))
    assert result.returncode != 0
    assert 'is invalid: spec.size: Unsupported value: "huge"' in result.stderr
    assert widgets.kubectl("get", "widget", "bad", "-n", "default").returncode != 0


def test_server_accepts_valid_widget(widgets: ControlPlane) -> None:
    result = widgets.kubectl("apply", "--validate=false", "-f", "-", input=widget("good", "small"))
    assert result.returncode == 0, result.stderr
    stored = widgets.kubectl("get", "widget", "good", "-n", "default", "-o", "json")
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["spec"] == {"size": "small"}
