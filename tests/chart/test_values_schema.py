"""values.schema.json refuses bad values with a message that names the value, in helm 3 and helm 4."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.chart.helm import CHART, Helm, HelmError

# (values, the offending key's path, words the message must contain in helm 3 / helm 4)
BAD_VALUES: list[tuple[dict[str, Any], str, str, str]] = [
    ({"webhook": {"failurePolicy": "Nope"}}, "webhook.failurePolicy", '"Ignore", "Fail"', "'Ignore', 'Fail'"),
    ({"replicaCount": 2}, "", "Additional property replicaCount is not allowed",
     "additional properties 'replicaCount' not allowed"),
    ({"operator": {"replicas": 2}}, "operator", "Additional property replicas", "additional properties 'replicas'"),
    ({"webhook": {"timeoutSeconds": 60}}, "webhook.timeoutSeconds", "less than or equal to 30", "maximum"),
    ({"webhook": {"port": 443}}, "webhook.port", "greater than or equal to 1024", "minimum"),
    ({"webhook": {"url": "http://127.0.0.1:9443/inject-sidecar"}}, "webhook.url", "pattern", "pattern"),
    ({"operator": {"image": {"pullPolicy": "Sometimes"}}}, "operator.image.pullPolicy", "one of", "one of"),
    ({"operator": {"nativeSidecars": "maybe"}}, "operator.nativeSidecars", "one of", "one of"),
    ({"operator": {"resources": {"requests": {"cpu": "fast"}}}}, "operator.resources.requests.cpu", "pattern",
     "pattern"),
    ({"redis": {"enabled": "yes"}}, "redis.enabled", "boolean", "boolean"),
    ({"redis": {"persistence": {"size": "lots"}}}, "redis.persistence.size", "pattern", "pattern"),
    ({"redis": {"defaultCache": {"ttl": "soon"}}}, "redis.defaultCache.ttl", "pattern", "pattern"),
    ({"webhook": {"excludedNamespaces": ["Kube_System"]}}, "webhook.excludedNamespaces.0", "pattern", "pattern"),
    ({"webhook": {"certManager": {"issuerRef": {"kind": "Vault"}}}}, "webhook.certManager.issuerRef.kind", "one of",
     "one of"),
    ({"operator": {"tolerations": [{"effect": "Sometimes"}]}}, "operator.tolerations.0.effect", "one of", "one of"),
    ({"embedder": {"enabled": "yes"}}, "embedder.enabled", "boolean", "boolean"),
    ({"embedder": {"replicas": 0}}, "embedder.replicas", "greater than or equal to 1", "minimum"),
    ({"embedder": {"service": {"port": 70000}}}, "embedder.service.port", "less than or equal to 65535", "maximum"),
    ({"embedder": {"model": "bge"}}, "embedder", "Additional property model", "additional properties 'model'"),
    ({"redis": {"defaultCache": {"semantic": "on"}}}, "redis.defaultCache.semantic", "boolean", "boolean"),
    ({"operator": {"watchNamespaces": ["Team_A"]}}, "operator.watchNamespaces.0", "pattern", "pattern"),
    ({"operator": {"allowedCacheNamespaces": ["team:a"]}}, "operator.allowedCacheNamespaces.0", "pattern", "pattern"),
    ({"operator": {"allowedCacheNamespaces": []}}, "operator.allowedCacheNamespaces", "at least 1", "minItems"),
    ({"sidecar": {"allowedImages": ["registry/*/x:1"]}}, "sidecar.allowedImages.0", "pattern", "pattern"),
    ({"sidecar": {"runAsUser": 0}}, "sidecar.runAsUser", "greater than or equal to 1", "minimum"),
    ({"transparent": {"allowedHosts": ["API.OPENAI.COM"]}}, "transparent.allowedHosts.0", "pattern", "pattern"),
    ({"operator": {"networkPolicy": {"apiServerCIDRs": ["10.0.0.1"]}}}, "operator.networkPolicy.apiServerCIDRs.0",
     "pattern", "pattern"),
    ({"rbac": {"aggregateToDefaultRoles": "yes"}}, "rbac.aggregateToDefaultRoles", "boolean", "boolean"),
]  # fmt: skip


def helm_path(helm: Helm, dotted: str) -> str:
    """How each helm names a value: `a.b.0` in helm 3, `/a/b/0` in helm 4."""
    if helm.name == "helm3":
        return dotted or "(root)"
    return "at '" + "".join(f"/{part}" for part in dotted.split(".") if part) + "'"


@pytest.mark.parametrize(
    ("values", "path", "helm3_words", "helm4_words"), BAD_VALUES, ids=[p or "(root)" for _, p, *_ in BAD_VALUES]
)
def test_a_bad_value_is_refused_with_a_message_naming_it(
    helm: Helm, values: dict[str, Any], path: str, helm3_words: str, helm4_words: str
) -> None:
    with pytest.raises(HelmError) as caught:
        helm.template(values)
    message = caught.value.stderr
    assert "values don't meet the specifications of the schema" in message
    assert helm_path(helm, path) in message
    assert (helm3_words if helm.name == "helm3" else helm4_words) in message


@pytest.mark.parametrize("values", [v for v, *_ in BAD_VALUES[:3]])
def test_lint_refuses_the_same_values(helm: Helm, values: dict[str, Any]) -> None:
    values_file = helm.home / "bad.json"
    values_file.write_text(json.dumps(values))
    result = helm.run("lint", "--strict", str(CHART), "--values", str(values_file))
    assert result.returncode != 0
    assert "schema" in result.stdout + result.stderr


def test_every_value_in_values_yaml_is_typed_and_every_object_refuses_unknown_keys() -> None:
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    definitions = schema["definitions"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        assert "type" in node, f"{path}: no type in values.schema.json"
        if isinstance(value, dict) and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path}: unknown keys are not refused"
            for key, item in value.items():
                assert key in node["properties"], f"{path}.{key}: not in values.schema.json"
                walk(item, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "values")


def test_the_readme_documents_every_value() -> None:
    import yaml

    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(node: Any, path: str) -> list[str]:
        if isinstance(node, dict) and node and not path.endswith(("podSelector", "labels", "resources")):
            return [leaf for key, value in node.items() for leaf in leaves(value, f"{path}.{key}" if path else key)]
        return [path]

    def documented(path: str) -> bool:
        parent, _, leaf = path.rpartition(".")
        # A row may list siblings: `operator.serviceAccount.create` / `.name` / `.annotations`
        return f"`{path}`" in readme or (f"`{parent}." in readme and f"`.{leaf}`" in readme)

    missing = [p for p in leaves(values, "") if not documented(p)]
    assert not missing, f"not in charts/llmcache/README.md's values table: {missing}"
