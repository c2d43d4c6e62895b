"""`python -m llmcache_operator`: the operator, cluster-wide, with a liveness endpoint.

Equivalent to `kopf run -m llmcache_operator.handlers --all-namespaces`.
LLMCACHE_OPERATOR_LIVENESS (default http://0.0.0.0:8080/healthz) is where the
kubelet probes it; LLMCACHE_OPERATOR_PEERING=on makes replicas coordinate through
kopf's peering resource instead of running standalone.
"""

from __future__ import annotations

import os

import kopf

from llmcache_operator import handlers  # noqa: F401  - registers the handlers


def main() -> None:
    kopf.configure(verbose=os.environ.get("LLMCACHE_OPERATOR_VERBOSE", "").lower() in ("1", "true", "on"))
    kopf.run(
        clusterwide=True,
        standalone=os.environ.get("LLMCACHE_OPERATOR_PEERING", "off").lower() not in ("on", "true", "1"),
        liveness_endpoint=os.environ.get("LLMCACHE_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        registry=kopf.get_default_registry(),
    )


if __name__ == "__main__":
    main()
