"""Security properties read from the rendered objects: minimal RBAC, restricted pods, a fail-open webhook.

The RBAC the chart grants is compared with what the operator's code calls:
`llmcache_operator.k8s` (read with `ast`: every client method it calls is mapped to a
verb and resource below, and an unmapped one fails the test) and kopf's own needs,
derived from the handlers registered by `llmcache_operator.handlers`. The end-to-end
test (tests/e2e_k8s/test_chart_e2e.py) then runs the operator with exactly these
permissions against a real API server.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from tests.chart.helm import NAMESPACE, RELEASE, Helm, Obj, by_kind, env_of, one, pod_specs
from tests.chart.test_render import OPTION_SETS, rendered

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

# Each Kubernetes client method llmcache_operator.k8s calls, and the permission it needs.
CLIENT_CALLS: dict[str, Permission | None] = {
    "create_namespaced_config_map": ("", "configmaps", "create"),
    "read_namespaced_config_map": ("", "configmaps", "get"),
    "patch_namespaced_config_map": ("", "configmaps", "patch"),
    "read_namespaced_secret": ("", "secrets", "get"),
    "create_namespaced_secret": ("", "secrets", "create"),
    "replace_namespaced_secret": ("", "secrets", "update"),
    "patch_namespaced_custom_object_status": ("llmcache.dev", "llmcaches/status", "patch"),
    "read_mutating_webhook_configuration": ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"),
    "patch_mutating_webhook_configuration": ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"),
    "read_namespace": ("", "namespaces", "get"),
    "list_cluster_custom_object": ("llmcache.dev", "llmcaches", "list"),
    "list_namespaced_custom_object": ("llmcache.dev", "llmcaches", "list"),
    "get_namespaced_custom_object": ("llmcache.dev", "llmcaches", "get"),
    "list_namespaced_pod": ("", "pods", "list"),
    "create_namespaced_event": ("", "events", "create"),  # PodNotInjected, posted from the webhook
    "get_code": None,  # GET /version: readable by every authenticated user (system:public-info-viewer)
    "close": None,  # the client's own, no request
    "sanitize_for_serialization": None,
    "call_api": None,  # a raw request: its permission comes from its path and method (raw_call_permission)
}
# The resources of the raw paths k8s.Api requests itself (a Secret's metadata only).
RAW_VERBS = {"GET": "get", "LIST": "list", "POST": "create", "PUT": "update", "PATCH": "patch"}
# Granted although no code calls them, each for a reason the chart's template states.
NOT_CALLS: set[Permission] = {
    ("llmcache.dev", "llmcaches/finalizers", "update"),  # blockOwnerDeletion on the ConfigMap's ownerReference
}
API_ATTRIBUTES = {"_core", "_custom", "_admission", "_version", "_client"}
DANGEROUS_VERBS = {"*", "delete", "deletecollection", "escalate", "bind", "impersonate"}


def k8s_calls_by_method() -> dict[str, set[Permission]]:
    """k8s.Api method name -> the permissions of the client calls it makes."""
    from llmcache_operator import k8s

    tree = ast.parse(inspect.getsource(k8s.Api))
    result: dict[str, set[Permission]] = {}
    for method in (n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)):
        for node in ast.walk(method):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr in API_ATTRIBUTES
            ):
                call = node.func.attr
                assert call in CLIENT_CALLS, (
                    f"k8s.Api.{method.name} calls {call}: map it here and grant it in the chart"
                )
                permission = raw_call_permission(node) if call == "call_api" else CLIENT_CALLS[call]
                if permission is not None:
                    result.setdefault(method.name, set()).add(permission)
    return result


def raw_call_permission(node: ast.Call) -> Permission:
    """`call_api(PATH, "GET", ...)`: the resource from the path (a constant of k8s), the verb from the method."""
    from llmcache_operator import k8s

    path_arg, method_arg = node.args[0], node.args[1]
    path = getattr(k8s, path_arg.id) if isinstance(path_arg, ast.Name) else ast.literal_eval(path_arg)
    method = ast.literal_eval(method_arg)
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    resource = parts[parts.index("namespaces") + 2] if "namespaces" in parts else parts[-2]
    return group, resource, RAW_VERBS[method]


def kopf_needs(*, scanning: bool = True) -> set[Permission]:
    """What kopf itself calls for the handlers llmcache_operator.handlers registers.

    `scanning`: kopf watches CRDs to notice them appear and go; the operator turns that off
    when it serves named namespaces (handlers.startup_fn), and kopf then discovers them once.
    """
    import kopf

    import llmcache_operator.handlers  # noqa: F401  - registers the handlers

    registry = kopf.get_default_registry()
    needs: set[Permission] = {("", "events", "create")}  # kopf.warn and handler errors become Events
    if scanning:
        needs |= {
            ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
            ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        }
    observing = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    changing = [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    for handler in [*observing, *changing]:
        selector = handler.selector
        plural = selector.plural or selector.any_name if selector is not None else None
        assert selector is not None and isinstance(plural, str), f"handler {handler.id}: a resource kopf must list"
        group = selector.group or ""
        needs |= {(group, plural, "list"), (group, plural, "watch")}
        if handler in changing:
            # kopf keeps its progress in annotations (a patch) and writes the returned status.
            needs |= {(group, plural, "patch"), (group, f"{plural}/status", "patch")}
    assert registry._webhooks.get_all_handlers(), "the admission handler is served, not watched: no permission"
    return needs


def protocol_methods(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def tls_store_methods() -> set[str]:
    """Calls only the webhook's own certificate needs (in the release namespace)."""
    from llmcache_operator.interception_ca import CAStore
    from llmcache_operator.webhook_tls import TLSStore

    return protocol_methods(TLSStore) - protocol_methods(CAStore)  # the interception CAs are in every namespace


def operator_needs(*, scanning: bool = True) -> tuple[set[Permission], set[Permission]]:
    """(what the operator calls for LLMCaches, what only its webhook certificate needs)."""
    by_method = k8s_calls_by_method()
    tls_methods = tls_store_methods()
    core = set().union(*(perms for method, perms in by_method.items() if method not in tls_methods))
    tls = set().union(*(by_method[m] for m in tls_methods if m in by_method))
    return kopf_needs(scanning=scanning) | core | NOT_CALLS, tls


CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "mutatingwebhookconfigurations"}


def cluster_scoped(permission: Permission) -> bool:
    return permission[1] in CLUSTER_SCOPED


def flatten(rules: Iterable[Mapping[str, Any]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_rules(objs: list[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(rules of the operator's ClusterRole, rules of the webhook-TLS Role and ClusterRole)."""
    main = one(objs, "ClusterRole", "-operator")["rules"]
    tls = [r for o in by_kind(objs, "ClusterRole") + by_kind(objs, "Role")
           if o["metadata"]["name"].endswith("-webhook-tls") for r in o["rules"]]  # fmt: skip
    return main, tls


# --- RBAC ------------------------------------------------------------------------------------------------------


def test_the_operators_cluster_role_grants_exactly_what_its_code_and_kopf_call(helm: Helm) -> None:
    needs, _ = operator_needs()
    main, _ = operator_rules(rendered(helm, "defaults"))

    assert flatten(main) == needs
    assert all("resourceNames" not in rule for rule in main)


@pytest.mark.parametrize("option_set", ["watch-namespaces", "watch-namespaces-cert-manager"])
def test_with_watch_namespaces_each_gets_a_role_with_exactly_the_namespaced_calls(helm: Helm, option_set: str) -> None:
    """Issue 15, finding 6: no namespaced permission is granted cluster-wide any more."""
    from tests.chart.test_render import OPTION_SETS

    watched = OPTION_SETS[option_set]["operator"]["watchNamespaces"]
    needs, _ = operator_needs(scanning=False)
    objs = rendered(helm, option_set)
    roles = {
        o["metadata"]["namespace"]: o for o in by_kind(objs, "Role") if o["metadata"]["name"].endswith("-operator")
    }
    bindings = {o["metadata"]["namespace"]: o for o in by_kind(objs, "RoleBinding")
                if o["metadata"]["name"].endswith("-operator")}  # fmt: skip
    main, _ = operator_rules(objs)

    assert sorted(roles) == sorted(bindings) == sorted(watched)
    for namespace, role in roles.items():
        assert flatten(role["rules"]) == {p for p in needs if not cluster_scoped(p)}, namespace
        assert bindings[namespace]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": role["metadata"]["name"]}  # fmt: skip
    assert flatten(main) == {p for p in needs if cluster_scoped(p)}
    for rule in main:
        if rule["resources"] == ["namespaces"]:
            assert rule["resourceNames"] == watched  # the Pod Security label of those namespaces only
    env = env_of(one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])
    assert env["LLMCACHE_OPERATOR_WATCH_NAMESPACES"].split(",") == watched


def test_with_watch_namespaces_the_webhook_secret_is_granted_in_the_release_namespace_by_name(helm: Helm) -> None:
    from llmcache_operator.webhook_tls import TLSStore

    by_method = k8s_calls_by_method()
    secret_calls = set().union(*(by_method[m] for m in protocol_methods(TLSStore) if m in by_method))
    objs = rendered(helm, "watch-namespaces")
    (role,) = [o for o in by_kind(objs, "Role") if o["metadata"]["name"].endswith("-webhook-tls")]
    _, tls = operator_rules(objs)

    assert role["metadata"]["namespace"] == NAMESPACE
    assert flatten(tls) == secret_calls
    for rule in role["rules"]:
        if rule["verbs"] != ["create"]:  # a create cannot be limited by name
            assert rule["resourceNames"] == [f"{RELEASE}-llmcache-webhook-tls"]


def test_the_webhook_tls_permissions_are_exactly_the_tls_calls_and_limited_by_name(helm: Helm) -> None:
    _, tls_calls = operator_needs()
    objs = rendered(helm, "defaults")
    _, tls = operator_rules(objs)

    assert flatten(tls) == tls_calls
    for rule in tls:
        assert rule["resourceNames"] == [one(objs, "MutatingWebhookConfiguration")["metadata"]["name"]]


def test_with_cert_manager_the_operator_gets_no_tls_permissions(helm: Helm) -> None:
    _, tls = operator_rules(rendered(helm, "cert-manager"))
    assert tls == []


@pytest.mark.parametrize("option_set", sorted(OPTION_SETS))
def test_no_rule_grants_wildcards_or_dangerous_verbs_and_bindings_name_only_the_operator(
    helm: Helm, option_set: str
) -> None:
    objs = rendered(helm, option_set)
    for role in [o for o in by_kind(objs, "ClusterRole") + by_kind(objs, "Role") if not people_role(o)]:
        for rule in role["rules"]:
            assert not DANGEROUS_VERBS & set(rule["verbs"]), role["metadata"]["name"]
            assert "*" not in rule["apiGroups"] + rule["resources"], role["metadata"]["name"]
            assert "nonResourceURLs" not in rule
    for binding in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-llmcache-operator", "namespace": NAMESPACE}
        ]
    workloads = pod_specs(objs)
    operator_spec = next(spec for name, spec in workloads if name.endswith("-operator"))
    assert operator_spec["serviceAccountName"] == f"{RELEASE}-llmcache-operator"
    for name, spec in workloads:
        if not name.endswith("-operator"):
            assert spec.get("automountServiceAccountToken") is False, f"{name} needs no API access"


def people_role(obj: Obj) -> bool:
    """The roles the chart ships for people who write or read LLMCaches, bound by nobody."""
    return obj["kind"] == "ClusterRole" and obj["metadata"]["name"].endswith(("-editor", "-viewer"))


# --- Who may write an LLMCache (finding 1) ------------------------------------------------------------------------


def test_the_editor_role_writes_llmcaches_only_and_joins_admin_and_edit_the_viewer_joins_view(helm: Helm) -> None:
    objs = rendered(helm, "defaults")
    editor, viewer = one(objs, "ClusterRole", "-editor"), one(objs, "ClusterRole", "-viewer")

    assert flatten(editor["rules"]) == {("llmcache.dev", "llmcaches", v) for v in
                                        ("get", "list", "watch", "create", "update", "patch", "delete",
                                         "deletecollection")} | {("llmcache.dev", "llmcaches/status", "get")}  # fmt: skip
    assert flatten(viewer["rules"]) == {("llmcache.dev", r, v) for r in ("llmcaches", "llmcaches/status")
                                        for v in ("get", "list", "watch")}  # fmt: skip
    aggregation = {k: v for k, v in editor["metadata"]["labels"].items() if k.startswith("rbac.authorization")}
    assert aggregation == {"rbac.authorization.k8s.io/aggregate-to-admin": "true",
                           "rbac.authorization.k8s.io/aggregate-to-edit": "true"}  # fmt: skip
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert not [b for b in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding")
                if b["roleRef"]["name"] in (editor["metadata"]["name"], viewer["metadata"]["name"])]  # fmt: skip


def test_without_aggregation_the_roles_are_shipped_for_you_to_bind(helm: Helm) -> None:
    objs = rendered(helm, "allowlists")
    for role in (one(objs, "ClusterRole", "-editor"), one(objs, "ClusterRole", "-viewer")):
        assert not [k for k in role["metadata"]["labels"] if k.startswith("rbac.authorization.k8s.io/aggregate")]


# --- What LLMCaches may use: the operator's allowlists come from values (findings 1, 5, 12) ------------------------


def test_the_allowlists_default_to_the_operators_own_and_reach_it_as_it_parses_them(helm: Helm) -> None:
    from llmcache_operator import allowlist, injection
    from llmcache_operator.options import Options

    default = Options.from_env(env_of(one(rendered(helm, "defaults"), "Deployment", "-operator")
                                      ["spec"]["template"]["spec"]["containers"][0]))  # fmt: skip
    assert default.allowlist == allowlist.Allowlist()  # images: only its own; hosts: the built-in providers'
    assert default.allowlist.hosts == allowlist.DEFAULT_HOSTS
    assert default.sidecar_uid == injection.SIDECAR_UID
    assert default.watch_namespaces == ()
    chosen = Options.from_env(env_of(one(rendered(helm, "allowlists"), "Deployment", "-operator")
                                     ["spec"]["template"]["spec"]["containers"][0]))  # fmt: skip
    assert chosen.allowlist == allowlist.Allowlist(
        images=("registry.corp/llmcache-sidecar:*",),
        hosts=("api.openai.com", "api.mistral.ai", "*.corp.example"),
        cache_namespaces=("{namespace}", "shared"),
    )
    assert chosen.sidecar_uid == 40001


def test_the_bundled_redis_password_is_labelled_usable_where_the_default_llmcache_reads_it(helm: Helm) -> None:
    from llmcache_operator.secret_refs import USABLE

    objs = rendered(helm, "redis")
    cache = one(objs, "LLMCache")
    ref = cache["spec"]["backend"]["redis"]["passwordSecretRef"]
    (secret,) = [o for o in by_kind(objs, "Secret")
                 if (o["metadata"]["namespace"], o["metadata"]["name"]) == (cache["metadata"]["namespace"], ref["name"])]  # fmt: skip
    assert USABLE.items() <= secret["metadata"]["labels"].items()
    server_copy = [o for o in by_kind(objs, "Secret") if o["metadata"]["namespace"] == NAMESPACE]
    assert server_copy and "llmcache.dev/usable" not in server_copy[0]["metadata"]["labels"]


# --- Who may call the webhook (finding 11) -------------------------------------------------------------------------


def ingress_by_port(policy: Obj) -> dict[int, list[Obj] | None]:
    """port -> the peers allowed to reach it (None: every source)."""
    found: dict[int, list[Obj] | None] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["protocol"] == "TCP"
            found[port["port"]] = rule.get("from")
    return found


def test_a_network_policy_lets_in_only_the_webhook_and_health_ports_of_the_operator(helm: Helm) -> None:
    objs = rendered(helm, "defaults")
    policy = one(objs, "NetworkPolicy", "-operator")
    deployment = one(objs, "Deployment", "-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert selected(policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert not selected(policy["spec"]["podSelector"], {"app.kubernetes.io/part-of": "llmcache",
                                                        "app.kubernetes.io/component": "redis"})  # fmt: skip
    # The API server's addresses cannot be known here: without apiServerCIDRs both ports stay open.
    assert ingress_by_port(policy) == {ports["webhook"]: None, ports["health"]: None}


def test_with_the_api_servers_cidrs_only_they_reach_the_webhook(helm: Helm) -> None:
    objs = rendered(helm, "network-policy")
    policy = one(objs, "NetworkPolicy", "-operator")
    ports = {p["name"]: p["containerPort"] for p in operator_container_of(objs)["ports"]}

    assert ports["health"] == 8181
    assert ingress_by_port(policy) == {
        ports["webhook"]: [
            {"ipBlock": {"cidr": "10.0.0.10/32"}},
            {"ipBlock": {"cidr": "10.0.0.11/32"}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
             "podSelector": {"matchLabels": {"k8s-app": "konnectivity-agent"}}},
        ],
        8181: [{"ipBlock": {"cidr": "10.1.0.0/16"}}],
    }  # fmt: skip
    assert env_of(operator_container_of(objs))["LLMCACHE_OPERATOR_LIVENESS"] == "http://0.0.0.0:8181/healthz"


def test_the_network_policy_follows_the_webhook_and_can_be_turned_off(helm: Helm) -> None:
    (policy,) = by_kind(rendered(helm, "webhook-off"), "NetworkPolicy")
    assert list(ingress_by_port(policy)) == [8080]  # no webhook port to open
    assert by_kind(rendered(helm, "network-policy-off"), "NetworkPolicy") == []


def operator_container_of(objs: list[Obj]) -> Obj:
    container: Obj = one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    return container


# --- Pods ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option_set", sorted(OPTION_SETS))
def test_every_container_is_non_root_read_only_without_capabilities_and_bounded(helm: Helm, option_set: str) -> None:
    for name, spec in pod_specs(rendered(helm, option_set)):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], name
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context.get("privileged", False) is False, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"], name


def test_the_pods_uids_are_the_ones_the_images_run_as(helm: Helm) -> None:
    from llmcache_operator.injection import SIDECAR_UID
    from tests.chart.test_images import dockerfile_user

    spec = one(rendered(helm, "defaults"), "Deployment", "-operator")["spec"]["template"]["spec"]
    assert str(spec["securityContext"]["runAsUser"]) == dockerfile_user("operator")
    embedder = one(rendered(helm, "embedder"), "Deployment", "-embedder")["spec"]["template"]["spec"]
    assert str(embedder["securityContext"]["runAsUser"]) == dockerfile_user("embedder")
    assert str(SIDECAR_UID) == dockerfile_user("sidecar")  # the webhook sets runAsUser on the sidecar


# --- The webhook fails open and skips what it must -----------------------------------------------------------


def selected(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def namespace_labels(name: str, *, modern: bool = True, webhook: str | None = None) -> dict[str, str]:
    """A namespace's labels: 1.21+ servers add kubernetes.io/metadata.name, 1.20 does not;
    `webhook` is the value of the documented llmcache.dev/webhook label."""
    labels = {"kubernetes.io/metadata.name": name} if modern else {}
    return labels if webhook is None else {**labels, "llmcache.dev/webhook": webhook}


def test_the_webhook_fails_open_fast_and_only_on_pod_creation(helm: Helm) -> None:
    (hook,) = one(rendered(helm, "defaults"), "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] <= 5
    assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["pods"], "scope": "Namespaced"}]  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "sent"),
    [
        (namespace_labels("team-a"), True),
        (namespace_labels("kube-system"), False),
        (namespace_labels("kube-public"), False),
        (namespace_labels("kube-node-lease"), False),
        (namespace_labels(NAMESPACE), False),  # the release namespace
        (namespace_labels("team-b", webhook="disabled"), False),  # the documented opt-out
        # Kubernetes 1.20: no name label, so the system namespaces need the opt-out label.
        (namespace_labels("kube-system", modern=False, webhook="disabled"), False),
        (namespace_labels("team-a", modern=False), True),
    ],
)
def test_the_namespace_selector_skips_system_and_release_namespaces(
    helm: Helm, labels: dict[str, str], sent: bool
) -> None:
    (hook,) = one(rendered(helm, "defaults"), "MutatingWebhookConfiguration")["webhooks"]
    assert selected(hook["namespaceSelector"], labels) is sent


@pytest.mark.parametrize(
    ("labels", "sent"),
    [
        (namespace_labels("team-a"), False),
        (namespace_labels("team-a", webhook="enabled"), True),
        (namespace_labels("monitoring", webhook="enabled"), False),  # excluded by name
        (namespace_labels(NAMESPACE, webhook="enabled"), False),
    ],
)
def test_with_opt_in_only_labelled_namespaces_are_sent(helm: Helm, labels: dict[str, str], sent: bool) -> None:
    (hook,) = one(rendered(helm, "opt-in-namespaces"), "MutatingWebhookConfiguration")["webhooks"]
    assert selected(hook["namespaceSelector"], labels) is sent


@pytest.mark.parametrize("option_set", ["defaults", "redis", "scheduling", "embedder"])
def test_llmcaches_own_pods_are_never_sent_to_the_webhook(helm: Helm, option_set: str) -> None:
    objs = rendered(helm, option_set)
    (hook,) = one(objs, "MutatingWebhookConfiguration")["webhooks"]
    own = [o["spec"]["template"]["metadata"]["labels"] for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    assert own
    assert not [labels for labels in own if selected(hook["objectSelector"], labels)]
    assert selected(hook["objectSelector"], {"app": "chat", "llmcache.dev/enabled": "true"})


def test_the_operator_also_refuses_the_system_and_release_namespaces_itself(helm: Helm) -> None:
    """Belt and braces for 1.20, where the namespace selector cannot tell namespaces by name."""
    from llmcache_operator.injection import OWN_LABEL, SYSTEM_NAMESPACES

    objs = rendered(helm, "defaults")
    env = env_of(one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])
    excluded = set(env["LLMCACHE_OPERATOR_EXCLUDED_NAMESPACES"].split(","))
    assert excluded >= SYSTEM_NAMESPACES | {NAMESPACE}
    labels = one(objs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert labels[OWN_LABEL[0]] == OWN_LABEL[1]  # the operator's own check skips these pods too
