"""4. Two replicas behind one Redis: a call from pod A, then the same call from pod B, is a hit for B."""

from __future__ import annotations

from tests.e2e_node.conftest import APP_NS, Release, app_deployment, ask, path_of, rolled_out
from tests.node.kube import Kube
from tests.node.origins import Origins

APP = "twins"


def test_a_call_from_one_replica_is_a_hit_for_the_other(release: Release, kube: Kube, fake: Origins) -> None:
    kube.apply(app_deployment(APP, APP_NS, release.built.app, replicas=2))
    a, b = (path_of(p) for p in rolled_out(kube, APP_NS, APP, replicas=2))
    calls = fake.provider.count("/chat/completions")
    from_a = ask(kube, APP_NS, a, "What is the capital of France?")
    from_b = ask(kube, APP_NS, b, "What is the capital of France?")
    assert from_a.cache == "llmcache; fwd=miss; stored"
    assert from_b.cache == "llmcache; hit"
    assert from_b.id == from_a.id
    assert fake.provider.count("/chat/completions") == calls + 1
