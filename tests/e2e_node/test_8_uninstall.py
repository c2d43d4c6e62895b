"""8. `helm uninstall` leaves no webhook configuration that would block pods; a pod made right after starts."""

from __future__ import annotations

import json

from tests.e2e_node.conftest import APP_NS, RELEASE, RELEASE_NS, Release, container_names, labelled_pod
from tests.node.kube import Kube


def test_after_helm_uninstall_no_webhook_is_left_and_a_new_pod_starts(release: Release, kube: Kube) -> None:
    kube.helm("uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout", "3m")
    hooks = kube.get("mutatingwebhookconfigurations")["items"]
    assert [h["metadata"]["name"] for h in hooks] == []
    pod = labelled_pod("after-uninstall", APP_NS, release.built.app)
    kube.kubectl("apply", "-f", "-", input=json.dumps(pod))
    kube.kubectl("wait", "--for=condition=Ready", "pod/after-uninstall", "-n", APP_NS, "--timeout=60s", timeout=90)
    assert container_names(kube.get("pod", "after-uninstall", APP_NS)) == ["app"]
