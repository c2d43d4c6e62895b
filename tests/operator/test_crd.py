"""The committed CRD is the generated one, is a structural schema, and checks the examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from llmcache_operator import crd, spec
from llmcache_sidecar import config
from llmcache_sidecar.config import Settings, duration_text, parse_duration

ROOT = Path(__file__).parents[2]
CRD_FILE = ROOT / crd.DEFAULT_OUTPUT
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def committed() -> dict[str, Any]:
    data = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def openapi_schema() -> dict[str, Any]:
    schema: dict[str, Any] = committed()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_the_committed_crd_is_what_the_model_generates() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == crd.render(), "run `make crds` and commit the result"


def test_the_crd_has_short_name_status_subresource_and_printer_columns() -> None:
    doc = committed()
    assert doc["metadata"]["name"] == "llmcaches.llmcache.dev"
    assert doc["spec"]["names"]["shortNames"] == ["llmc"]
    assert doc["spec"]["scope"] == "Namespaced"
    (version,) = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Backend": ".spec.backend.type",
        "TTL": ".spec.ttl",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Injected": ".status.injectedPods",
        "Hit ratio": ".status.savings.hitRatio",
        "Tokens saved": ".status.savings.tokensSaved",
        "USD saved": ".status.savings.costSavedUSD",
        "Age": ".metadata.creationTimestamp",
    }


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path or "<root>", schema)]
    for name, sub in schema.get("properties", {}).items():
        found += walk(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += walk(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        found += walk(schema["items"], f"{path}[]")
    return found


def test_every_field_is_typed_and_described_as_a_structural_schema_requires() -> None:
    for path, node in walk(openapi_schema()["properties"]["spec"]):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if not path.endswith(("*", "[]")):
            assert node.get("description"), f"{path} has no description"


def test_every_default_satisfies_its_own_schema() -> None:
    for path, node in walk(openapi_schema()):
        if "default" in node:
            problems = [e.message for e in jsonschema.Draft7Validator(node).iter_errors(node["default"])]
            assert not problems, f"{path}: {problems}"


def secret_files(cls: type, path: str = "") -> set[str]:
    """The key paths of every secret file the sidecar reads, found in the model, not in the CRD."""
    found: set[str] = set()
    for s in config.settings_of(cls):
        if s.key.endswith("File") and not s.operator_owned:
            found.add(f"{path}.{s.key}")
        if config.is_settings_class(s.type):
            found |= secret_files(s.type, f"{path}.{s.key}")
    return found


def test_no_file_path_reaches_the_crd_every_secret_file_is_a_secret_reference() -> None:
    spec_schema = crd.build()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    paths = [path for path, _ in walk(spec_schema)]
    assert [p for p in paths if p.endswith("File")] == []
    refs = {p for p in paths if p.endswith("SecretRef")}
    assert refs == {p.removesuffix("File") + "SecretRef" for p in secret_files(config.CacheSettings)}
    assert ".backend.redis.passwordSecretRef" in refs and ".semantic.judge.apiKeySecretRef" in refs


def test_no_field_defaults_to_an_empty_string_and_status_has_no_defaults() -> None:
    # Kubernetes 1.20 refuses `default: ""` ("must be of type string"), seen on the real server.
    assert [path for path, node in walk(openapi_schema()) if node.get("default") == ""] == []
    assert [path for path, node in walk(openapi_schema()["properties"]["status"]) if "default" in node] == []


def test_a_defaulted_duration_reads_as_users_write_it_and_means_the_models_default() -> None:
    """`kubectl get llmc` printed TTL 3600 for a cache without spec.ttl and 1h for others (issue 14)."""
    durations = [(path, node) for path, node in walk(openapi_schema()) if node.get("x-kubernetes-int-or-string")]
    assert durations
    for path, node in durations:
        if "default" in node:
            assert isinstance(node["default"], str), f"{path}: {node['default']!r}"
    ttl = openapi_schema()["properties"]["spec"]["properties"]["ttl"]["default"]
    assert ttl == "1h"
    assert parse_duration(ttl) == Settings().ttl


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (90, "1m30s"), (0.25, "250ms"), (86400, "24h"), (3661.5, "1h1m1s500ms"), (0, "0s")],
)
def test_durations_are_written_the_way_the_parser_reads_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
    assert parse_duration(text) == seconds


def errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(openapi_schema())
    return sorted(e.message for e in validator.iter_errors(obj))


@pytest.mark.parametrize(
    ("spec_", "message"),
    [
        (
            {"backend": {"type": "memcached"}},
            "'memcached' is not one of ['memory', 'redis', 'dual', 's3', 'gcs', 'azureBlob', 'disk']",
        ),
        ({"ttl": "soon"}, "'soon' does not match"),
        ({"backend": {"redis": {"passwordSecretRef": {"name": "r"}}}}, "'key' is a required property"),
        ({"sidecar": {"resources": {"requests": {"cpu": "lots"}}}}, "'lots' does not match"),
        ({"sidecar": {"port": 70000}}, "70000 is greater than the maximum of 65535"),
    ],
)
def test_the_schema_refuses_what_the_api_server_must_refuse(spec_: dict[str, Any], message: str) -> None:
    found = errors({"apiVersion": spec.API_VERSION, "kind": spec.KIND, "metadata": {"name": "x"}, "spec": spec_})
    assert len(found) == 1 and found[0].startswith(message), found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(example: Path) -> None:
    docs = [d for d in yaml.safe_load_all(example.read_text(encoding="utf-8")) if d]
    assert docs
    for doc in docs:
        if doc["kind"] == spec.KIND:
            assert errors(doc) == []
            spec.parse(doc["spec"], name=doc["metadata"]["name"], namespace=doc["metadata"]["namespace"])
        else:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_there_is_an_example_per_backend() -> None:
    backends = set()
    for example in EXAMPLES:
        for doc in yaml.safe_load_all(example.read_text(encoding="utf-8")):
            if doc and doc["kind"] == spec.KIND:
                backends.add(doc["spec"]["backend"]["type"])
    assert backends == {"memory", "redis", "dual"}
