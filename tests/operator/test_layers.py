"""The operator's package keeps its one name.

Which module may import what (pure decisions without kopf, the Kubernetes client only
in `k8s`, the sidecar only through its config and backends faces) is checked by
import-linter's contracts in `.importlinter`, run by `make lint`.
"""

from __future__ import annotations

from pathlib import Path

import llmcache_operator

PACKAGE = Path(llmcache_operator.__file__).parent


def test_the_package_is_never_importable_as_operator() -> None:
    assert PACKAGE.name == "llmcache_operator"
    assert not (PACKAGE.parent / "operator").exists()
