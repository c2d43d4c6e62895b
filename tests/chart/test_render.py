"""The chart lints, renders valid objects for Kubernetes 1.28-1.35, and each option does what it says.

Every test runs with helm 3.17.3 and helm 4.3.1 (the `helm` fixture). Rendered objects
are validated with kubernetes-validate in strict mode (unknown fields refused); the
LLMCache against the CRD's own schema with jsonschema. cert-manager and
prometheus-operator resources have no offline schema here: their shape is asserted.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    ROOT,
    Helm,
    HelmError,
    Obj,
    by_kind,
    env_of,
    one,
    pod_specs,
    validation_errors,
)

WEBHOOK_URL = "https://127.0.0.1:9443/inject-sidecar"
OPTION_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "cert-manager-cluster-issuer": {
        "webhook": {"certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}
    },
    "redis": {"redis": {"enabled": True}},
    "redis-persistent": {"redis": {"enabled": True, "persistence": {"enabled": True, "storageClassName": "fast"}}},
    "service-monitor": {"monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "dashboards": {"monitoring": {"dashboard": {"enabled": True}, "prometheusRule": {"enabled": True}}},
    "webhook-url": {"webhook": {"url": WEBHOOK_URL}},
    "embedder": {"embedder": {"enabled": True}},
    "embedder-default-cache": {
        "redis": {"enabled": True, "defaultCache": {"semantic": True}},
        "embedder": {"enabled": True, "replicas": 2, "threads": 2, "service": {"port": 80}},
    },
    "webhook-off": {"webhook": {"enabled": False}},
    "transparent": {
        "transparent": {
            "clusterCIDRs": ["10.244.0.0/16", "10.96.0.0/12"],
            "redirectImage": {
                "repository": "registry.example/llmcache-redirect",
                "tag": "1.2.3",
            },
        }
    },
    "opt-in-namespaces": {"webhook": {"namespaceOptIn": True, "excludedNamespaces": ["monitoring"]}},
    "watch-namespaces": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "watch-namespaces-cert-manager": {
        "operator": {"watchNamespaces": ["team-a"]},
        "webhook": {"certManager": {"enabled": True}},
    },
    "network-policy": {
        "operator": {
            "healthPort": 8181,
            "networkPolicy": {
                "apiServerCIDRs": ["10.0.0.10/32", "10.0.0.11/32"],
                "webhookFrom": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "konnectivity-agent"}},
                    }
                ],
                "probeCIDRs": ["10.1.0.0/16"],
            },
        }
    },
    "network-policy-off": {"operator": {"networkPolicy": {"enabled": False}}},
    "allowlists": {
        "sidecar": {"allowedImages": ["registry.corp/llmcache-sidecar:*"], "runAsUser": 40001},
        "transparent": {"allowedHosts": ["api.openai.com", "api.mistral.ai", "*.corp.example"]},
        "operator": {"allowedCacheNamespaces": ["{namespace}", "shared"]},
        "rbac": {"aggregateToDefaultRoles": False},
    },
    "scheduling": {
        "imagePullSecrets": ["regcred"],
        "operator": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                        ]
                    }
                }
            },
            "priorityClassName": "system-cluster-critical",
            "image": {"repository": "registry.example/llmcache-operator", "tag": "9.9.9", "pullPolicy": "Always"},
        },
        "sidecar": {
            "image": {"repository": "registry.example/llmcache-sidecar", "tag": "9.9.9", "pullPolicy": "Always"}
        },
        "redis": {
            "enabled": True,
            "priorityClassName": "high",
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"operator": "Exists"}],
        },
        "embedder": {
            "enabled": True,
            "priorityClassName": "batch",
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "cpu-only", "operator": "Exists", "effect": "NoSchedule"}],
            "image": {"repository": "registry.example/llmcache-embedder", "tag": "9.9.9", "pullPolicy": "Always"},
        },
    },
}
RENDERED: dict[tuple[str, str], list[Obj]] = {}


def rendered(helm: Helm, option_set: str) -> list[Obj]:
    """The chart rendered with an option set (cached per helm and option set)."""
    key = (helm.name, option_set)
    if key not in RENDERED:
        RENDERED[key] = helm.template(OPTION_SETS[option_set])
    return copy.deepcopy(RENDERED[key])


def operator_container(objs: list[Obj]) -> Obj:
    container: Obj = one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_helm_lint_strict_passes_with_defaults_and_with_every_option(helm: Helm) -> None:
    everything: dict[str, Any] = {}
    for values in OPTION_SETS.values():
        everything = merge(everything, values)
    values_file = helm.home / "everything.yaml"
    values_file.write_text(yaml.safe_dump(everything))
    for extra in ([], ["--values", str(values_file)]):
        result = helm.run("lint", "--strict", str(CHART), *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in more.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("option_set", sorted(OPTION_SETS))
def test_every_rendered_object_is_valid_for_kubernetes_1_28_to_1_35(helm: Helm, option_set: str) -> None:
    objs = rendered(helm, option_set)
    errors = [
        f"{version} {o['kind']}/{o['metadata']['name']}: {error}"
        for version in KUBE_VERSIONS
        for o in objs
        for error in validation_errors(o, version)
    ]
    assert not errors, "\n".join(errors)
    watched = set(OPTION_SETS[option_set].get("operator", {}).get("watchNamespaces", []))
    assert {o["metadata"].get("namespace", NAMESPACE) for o in objs if o["kind"] != "LLMCache"} <= {
        NAMESPACE,
        "default",  # the copy of the Redis password next to the default LLMCache
        *watched,  # the operator's Roles there
    }


@pytest.mark.parametrize("option_set", ["defaults", "cert-manager", "webhook-url"])
def test_helm_3_and_helm_4_render_the_same_objects(
    tools: Path, tmp_path_factory: pytest.TempPathFactory, option_set: str
) -> None:
    """The objects, not their order: helm 4 orders kinds it does not know (Certificate, Issuer) differently."""
    helm3, helm4 = (Helm(name, tools / name, tmp_path_factory.mktemp(name)) for name in ("helm3", "helm4"))
    assert sorted_objects(rendered(helm3, option_set)) == sorted_objects(rendered(helm4, option_set))


def sorted_objects(objs: list[Obj]) -> list[Obj]:
    return sorted(objs, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def test_a_cluster_older_than_the_charts_kube_version_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="kubeVersion"):
        helm.template(kube_version="1.19.0")
    assert helm.template(kube_version="1.20.0")  # the oldest server the e2e tests run


def test_the_crds_are_installed_from_the_crds_folder(helm: Helm) -> None:
    objs = helm.template(extra=["--include-crds"])
    (crd,) = by_kind(objs, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "llmcaches.llmcache.dev"
    assert not by_kind(rendered(helm, "defaults"), "CustomResourceDefinition")  # not a template: helm never deletes it


# --- Webhook TLS ---------------------------------------------------------------------------------


def test_without_cert_manager_the_operator_is_told_to_keep_its_own_ca(helm: Helm) -> None:
    objs = rendered(helm, "defaults")
    env = env_of(operator_container(objs))
    hosts = env["LLMCACHE_OPERATOR_WEBHOOK_HOSTS"].split(",")
    deployment = one(objs, "Deployment", "-operator")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}

    assert env["LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET"] == f"{RELEASE}-llmcache-webhook-tls"
    assert (
        env["LLMCACHE_OPERATOR_WEBHOOK_CONFIGURATION"] == one(objs, "MutatingWebhookConfiguration")["metadata"]["name"]
    )
    assert f"{RELEASE}-llmcache-webhook.{NAMESPACE}.svc" in hosts
    assert "emptyDir" in volumes["tls"]  # the operator writes the pair there; the root filesystem is read-only
    assert not by_kind(objs, "Certificate") and not by_kind(objs, "Issuer")
    assert "caBundle" not in one(objs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]


def test_with_cert_manager_a_certificate_feeds_the_secret_and_the_ca_injector(helm: Helm) -> None:
    objs = rendered(helm, "cert-manager")
    certificate, issuer = one(objs, "Certificate"), one(objs, "Issuer")
    configuration = one(objs, "MutatingWebhookConfiguration")
    deployment = one(objs, "Deployment", "-operator")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    env = env_of(operator_container(objs))

    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"] == {"name": issuer["metadata"]["name"], "kind": "Issuer",
                                                "group": "cert-manager.io"}  # fmt: skip
    assert f"{RELEASE}-llmcache-webhook.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}"
    )
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert "LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET" not in env
    assert not [r for r in by_kind(objs, "Role") if r["metadata"]["name"].endswith("webhook-tls")]
    for cert_manager_object in (certificate, issuer):
        assert cert_manager_object["apiVersion"] == "cert-manager.io/v1"
        assert cert_manager_object["metadata"]["namespace"] == NAMESPACE


def test_an_existing_cluster_issuer_is_used_instead_of_a_new_issuer(helm: Helm) -> None:
    objs = rendered(helm, "cert-manager-cluster-issuer")
    assert not by_kind(objs, "Issuer")
    assert one(objs, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"
    }  # fmt: skip


def test_the_webhook_url_override_replaces_the_service_and_is_in_the_certificate(helm: Helm) -> None:
    objs = rendered(helm, "webhook-url")
    client_config = one(objs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    assert client_config == {"url": WEBHOOK_URL}
    assert "127.0.0.1" in env_of(operator_container(objs))["LLMCACHE_OPERATOR_WEBHOOK_HOSTS"].split(",")
    with_cert_manager = helm.template(merge(OPTION_SETS["webhook-url"], OPTION_SETS["cert-manager"]))
    assert one(with_cert_manager, "Certificate")["spec"]["ipAddresses"] == ["127.0.0.1"]


def test_the_service_path_is_the_operators_handler_id(helm: Helm) -> None:
    from llmcache_operator.webhook import HANDLER_ID

    service_ref = one(rendered(helm, "defaults"), "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    assert service_ref["service"]["path"] == f"/{HANDLER_ID}"
    service = one(rendered(helm, "defaults"), "Service", "-webhook")
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    assert (
        service["spec"]["selector"]
        == one(rendered(helm, "defaults"), "Deployment", "-operator")["spec"]["selector"]["matchLabels"]
    )


def test_with_the_webhook_off_the_operator_serves_none_and_nothing_is_registered(helm: Helm) -> None:
    objs = rendered(helm, "webhook-off")
    assert env_of(operator_container(objs))["LLMCACHE_OPERATOR_WEBHOOK"] == "off"
    assert not by_kind(objs, "MutatingWebhookConfiguration")
    assert not [s for s in by_kind(objs, "Service") if s["metadata"]["name"].endswith("-webhook")]
    assert "webhook-tls" not in json.dumps([o["metadata"]["name"] for o in objs])


def test_with_watched_namespaces_the_webhook_is_sent_only_their_pods(helm: Helm) -> None:
    """Else every pod spec of the cluster, env values included, reaches an operator that serves a few namespaces."""

    def selector(option_set: str) -> list[dict[str, Any]]:
        (config,) = by_kind(rendered(helm, option_set), "MutatingWebhookConfiguration")
        expressions: list[dict[str, Any]] = config["webhooks"][0]["namespaceSelector"]["matchExpressions"]
        return expressions

    name_in = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
    assert name_in in selector("watch-namespaces")
    assert not [e for e in selector("defaults") if e["operator"] == "In" and e["key"] == name_in["key"]]


# --- The operator Deployment ---------------------------------------------------------------------------


def test_the_operator_runs_one_replica_that_never_overlaps_its_successor(helm: Helm) -> None:
    spec = one(rendered(helm, "defaults"), "Deployment", "-operator")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_the_operator_is_probed_on_kopfs_liveness_endpoint_and_has_resources(helm: Helm) -> None:
    container = operator_container(rendered(helm, "defaults"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    liveness = env_of(container)["LLMCACHE_OPERATOR_LIVENESS"]

    assert liveness == f"http://0.0.0.0:{ports['health']}/healthz"
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "webhook"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


class RecordingEnv(dict[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_operator_setting_the_chart_passes_is_one_the_operator_reads(helm: Helm) -> None:
    from llmcache_operator import __main__ as main_module
    from llmcache_operator import options, webhook_tls

    env = RecordingEnv({"LLMCACHE_OPERATOR_WEBHOOK_TLS_SECRET": "s", "LLMCACHE_OPERATOR_NAMESPACE": "n",
                        "LLMCACHE_OPERATOR_WEBHOOK_HOSTS": "h"})  # fmt: skip
    options.Options.from_env(env)
    webhook_tls.TLSOptions.from_env(env)
    read = env.asked | set(re.findall(r"LLMCACHE_OPERATOR_[A-Z_]+", Path(main_module.__file__).read_text()))
    for option_set in ("defaults", "cert-manager", "webhook-off", "allowlists", "watch-namespaces"):
        passed = {e["name"] for e in operator_container(rendered(helm, option_set))["env"]}
        assert passed - read == set(), option_set


def test_images_pull_settings_and_scheduling_come_from_values(helm: Helm) -> None:
    objs = rendered(helm, "scheduling")
    operator = one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]
    redis = one(objs, "StatefulSet", "-redis")["spec"]["template"]["spec"]
    container = operator["containers"][0]

    assert container["image"] == "registry.example/llmcache-operator:9.9.9"
    assert container["imagePullPolicy"] == "Always"
    assert env_of(container)["LLMCACHE_OPERATOR_SIDECAR_IMAGE"] == "registry.example/llmcache-sidecar:9.9.9"
    assert one(objs, "LLMCache")["spec"]["sidecar"]["imagePullPolicy"] == "Always"
    assert operator["imagePullSecrets"] == redis["imagePullSecrets"] == [{"name": "regcred"}]
    embedder = one(objs, "Deployment", "-embedder")["spec"]["template"]["spec"]
    assert embedder["containers"][0]["image"] == "registry.example/llmcache-embedder:9.9.9"
    assert embedder["containers"][0]["imagePullPolicy"] == "Always"
    assert embedder["imagePullSecrets"] == [{"name": "regcred"}]
    assert (embedder["priorityClassName"], embedder["nodeSelector"]) == ("batch", {"pool": "cpu"})
    assert embedder["tolerations"][0]["key"] == "cpu-only"
    assert operator["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert operator["tolerations"][0]["key"] == "dedicated"
    assert operator["affinity"]["nodeAffinity"]
    assert operator["priorityClassName"] == "system-cluster-critical"
    assert (redis["priorityClassName"], redis["nodeSelector"]) == ("high", {"disk": "ssd"})


def test_images_default_to_the_charts_app_version(helm: Helm) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    container = operator_container(rendered(helm, "defaults"))
    assert container["image"].endswith(f"/llmcache-operator:{app_version}")
    assert env_of(container)["LLMCACHE_OPERATOR_SIDECAR_IMAGE"].endswith(f"/llmcache-sidecar:{app_version}")
    assert env_of(container)["LLMCACHE_OPERATOR_REDIRECT_IMAGE"].endswith(f"/llmcache-redirect:{app_version}")
    embedder = one(rendered(helm, "embedder"), "Deployment", "-embedder")["spec"]["template"]["spec"]["containers"][0]
    assert embedder["image"].endswith(f"/llmcache-embedder:{app_version}")


def test_transparent_values_reach_the_operator_in_the_form_its_options_parse(helm: Helm) -> None:
    from llmcache_operator.options import Options

    options = Options.from_env(env_of(operator_container(rendered(helm, "transparent"))))
    assert options.cluster_cidrs == ("10.244.0.0/16", "10.96.0.0/12")
    assert options.redirect_image == "registry.example/llmcache-redirect:1.2.3"
    assert Options.from_env(env_of(operator_container(rendered(helm, "defaults")))).cluster_cidrs == ()


def test_the_app_version_is_the_operators_the_sidecars_and_the_embedders_version() -> None:
    import llmcache_embedder

    import llmcache_operator
    import llmcache_sidecar

    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert app_version == llmcache_operator.__version__ == llmcache_sidecar.__version__
    assert app_version == llmcache_embedder.__version__


# --- Bundled Redis --------------------------------------------------------------------------------------


def test_bundled_redis_is_a_single_node_statefulset_with_a_default_llmcache_pointing_at_it(helm: Helm) -> None:
    objs = rendered(helm, "redis")
    statefulset, service = one(objs, "StatefulSet", "-redis"), one(objs, "Service", "-redis")
    cache = one(objs, "LLMCache")
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in by_kind(objs, "Secret")}
    redis = cache["spec"]["backend"]["redis"]
    ref = redis["passwordSecretRef"]
    config = secrets[NAMESPACE, statefulset["metadata"]["name"]]["stringData"]["redis.conf"]

    assert statefulset["spec"]["replicas"] == 1
    assert "volumeClaimTemplates" not in statefulset["spec"]
    assert redis["url"] == f"redis://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:6379/0"
    assert cache["metadata"]["namespace"] == "default"
    # The sidecars read the password from a Secret in their own namespace: the copy.
    copy_ = secrets["default", ref["name"]]["stringData"]
    assert f"requirepass {copy_['password']}" in config
    assert len(copy_["password"]) == 32
    assert cache["spec"]["sidecar"]["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                                     "limits": {"memory": "256Mi"}}  # fmt: skip
    assert not by_kind(rendered(helm, "defaults"), "StatefulSet")
    assert not by_kind(rendered(helm, "defaults"), "LLMCache")


def test_bundled_redis_keeps_its_data_on_a_claim_when_persistence_is_on(helm: Helm) -> None:
    objs = rendered(helm, "redis-persistent")
    spec = one(objs, "StatefulSet", "-redis")["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    secret = next(s for s in by_kind(objs, "Secret") if s["metadata"]["namespace"] == NAMESPACE)
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "data" not in {v["name"] for v in spec["template"]["spec"]["volumes"]}
    assert "appendonly yes" in secret["stringData"]["redis.conf"]


def test_a_given_redis_password_is_used_as_it_is(helm: Helm) -> None:
    objs = helm.template({"redis": {"enabled": True, "password": "s3cret", "defaultCache": {"namespace": NAMESPACE}}})
    (secret,) = by_kind(objs, "Secret")  # the LLMCache lives next to Redis: no copy
    assert secret["stringData"]["password"] == "s3cret"


# --- Monitoring ---------------------------------------------------------------------------------------------


def test_the_service_monitor_scrapes_labelled_services_in_any_namespace(helm: Helm) -> None:
    monitor = one(rendered(helm, "service-monitor"), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert not by_kind(rendered(helm, "defaults"), "ServiceMonitor")


def test_the_dashboard_and_the_alerts_are_the_files_the_chart_ships(helm: Helm) -> None:
    objs = rendered(helm, "dashboards")
    dashboard = one(objs, "ConfigMap", "-dashboard")
    rule = one(objs, "PrometheusRule")
    shipped_rules = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    shipped_dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())

    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["llmcache.json"]) == shipped_dashboard
    assert rule["spec"] == shipped_rules
    assert "{{ $labels.namespace }}" in json.dumps(rule["spec"])  # Prometheus's template, not Helm's
    assert not by_kind(rendered(helm, "defaults"), "PrometheusRule")
    assert not [c for c in by_kind(rendered(helm, "defaults"), "ConfigMap")]


def test_only_the_workloads_the_options_ask_for_are_rendered(helm: Helm) -> None:
    assert [name for name, _ in pod_specs(rendered(helm, "defaults"))] == [f"{RELEASE}-llmcache-operator"]
    assert len(pod_specs(rendered(helm, "redis"))) == 2
    assert sorted(name for name, _ in pod_specs(rendered(helm, "embedder"))) == [
        f"{RELEASE}-llmcache-embedder",
        f"{RELEASE}-llmcache-operator",
    ]
    assert not [
        s for s in by_kind(rendered(helm, "defaults"), "Service") if s["metadata"]["name"].endswith("-embedder")
    ]


# --- The in-cluster embedder ----------------------------------------------------------------------------------


def embedder_url(service: Obj) -> str:
    """The URL an LLMCache's semantic.embedding.url takes for this Service (docs/helm.md)."""
    meta = service["metadata"]
    return f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local:{service['spec']['ports'][0]['port']}/v1"


def test_the_embedder_is_a_deployment_behind_a_service_probed_on_healthz(helm: Helm) -> None:
    objs = rendered(helm, "embedder")
    deployment, service = one(objs, "Deployment", "-embedder"), one(objs, "Service", "-embedder")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert deployment["spec"]["replicas"] == 1
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["ports"][0]["port"] == 8080
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The model takes seconds to load (20 s seen on a busy node): the startup probe allows minutes.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert container["resources"]["requests"]["memory"] == "640Mi"
    assert {v["name"] for v in spec["volumes"]} == {m["name"] for m in container["volumeMounts"]} == {"tmp"}
    assert env_of(container)["HOME"].startswith("/tmp")
    assert ports == {"http": 8080}


def test_the_embedder_is_started_with_arguments_it_reads_listening_on_its_container_port(helm: Helm) -> None:
    from llmcache_embedder.cli import parser

    for option_set in ("embedder", "embedder-default-cache"):
        deployment = one(rendered(helm, option_set), "Deployment", "-embedder")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        args = parser().parse_args(container["args"])  # exits (SystemExit) on an argument it does not know
        assert (args.host, args.port) == ("0.0.0.0", container["ports"][0]["containerPort"])
        assert args.encoder == "minilm"
    assert args.threads == 2
    assert deployment["spec"]["replicas"] == 2


def test_the_default_llmcache_can_use_the_bundled_embedder_at_its_service_url(helm: Helm) -> None:
    objs = rendered(helm, "embedder-default-cache")
    semantic = one(objs, "LLMCache")["spec"]["semantic"]
    service = one(objs, "Service", "-embedder")

    assert semantic == {"enabled": True, "embedding": {"url": embedder_url(service)}}
    assert semantic["embedding"]["url"] == f"http://{RELEASE}-llmcache-embedder.{NAMESPACE}.svc.cluster.local:80/v1"
    assert "semantic" not in one(rendered(helm, "redis"), "LLMCache")["spec"]


def test_a_semantic_default_llmcache_without_the_embedder_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match=re.escape("redis.defaultCache.semantic needs embedder.enabled=true")):
        helm.template({"redis": {"enabled": True, "defaultCache": {"semantic": True}}})


@pytest.mark.parametrize(
    ("values", "needs"),
    [
        ({"redis": {"defaultCache": {"semantic": True}}}, "redis.enabled=true"),
        (
            {"redis": {"enabled": True, "defaultCache": {"enabled": False, "semantic": True}}},
            "redis.defaultCache.enabled=true",
        ),
    ],
    ids=["without-redis", "without-the-default-llmcache"],
)
def test_a_semantic_default_llmcache_with_no_default_llmcache_to_put_it_in_is_refused(
    helm: Helm, values: dict[str, Any], needs: str
) -> None:
    with pytest.raises(HelmError, match=re.escape(f"redis.defaultCache.semantic needs {needs}")):
        helm.template({**values, "embedder": {"enabled": True}})


def test_the_embedder_url_the_docs_give_for_their_install_command_is_the_rendered_service(helm: Helm) -> None:
    """The docs' examples are for `helm install llmcache charts/llmcache -n llmcache-system`."""
    result = helm.run(
        "template", "llmcache", str(CHART), "--namespace", "llmcache-system", "--set", "embedder.enabled=true"
    )
    assert result.returncode == 0, result.stderr
    objs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    url = embedder_url(one(objs, "Service", "-embedder"))

    assert url == "http://llmcache-embedder.llmcache-system.svc.cluster.local:8080/v1"
    for doc in (ROOT / "README.md", ROOT / "docs" / "helm.md", ROOT / "docs" / "semantic.md", CHART / "README.md"):
        text = " ".join(doc.read_text(encoding="utf-8").split())  # a URL may follow a line break
        assert url in text, doc
        assert "<release>-llmcache-embedder" not in text, doc


def test_the_install_notes_print_the_embedders_url(tools: Path, tmp_path: Path) -> None:
    """helm 4 only: helm 3's `install --dry-run=client` still asks a cluster for its version."""
    helm = Helm("helm4", tools / "helm4", tmp_path)
    values = helm.home / "embedder-notes.json"
    values.write_text(json.dumps(OPTION_SETS["embedder"]))
    result = helm.run("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                      "--values", str(values))  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"url: {embedder_url(one(rendered(helm, 'embedder'), 'Service', '-embedder'))}" in notes
    assert "embedder" not in helm.run("install", RELEASE, str(CHART), "--dry-run=client").stdout.split("NOTES:")[1]


def redis_checksum(helm: Helm, redis: dict[str, Any]) -> str:
    objs = helm.template({"redis": {"enabled": True, **redis}})
    return str(one(objs, "StatefulSet", "-redis")["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_an_upgrade_keeps_redis_running_when_its_password_was_generated(helm: Helm) -> None:
    """Each render of a fresh install generates a new password, as `helm upgrade` sees a new one
    beside the kept one: the checksum that restarts Redis must not depend on it (issue 14)."""
    first, second = redis_checksum(helm, {}), redis_checksum(helm, {})
    assert first == second
    assert redis_checksum(helm, {"maxmemory": "300mb"}) != first
    assert redis_checksum(helm, {"password": "a"}) != redis_checksum(helm, {"password": "b"})


def test_the_install_notes_say_when_the_webhook_port_is_open_to_every_source(tools: Path, tmp_path: Path) -> None:
    """helm 4 only, as above."""
    helm = Helm("helm4", tools / "helm4", tmp_path)
    values = helm.home / "network-policy.json"
    values.write_text(json.dumps(OPTION_SETS["network-policy"]))
    open_notes = helm.run("install", RELEASE, str(CHART), "--dry-run=client").stdout.split("NOTES:", 1)[1]
    closed = helm.run("install", RELEASE, str(CHART), "--dry-run=client", "--values", str(values))
    assert closed.returncode == 0, closed.stderr
    assert "The webhook's port admits every source" in open_notes
    assert "admits every source" not in closed.stdout.split("NOTES:", 1)[1]
