"""The chart installs the CRD from crds/, the one source (`make crds` copies it into the chart)."""

from __future__ import annotations

from tests.chart.helm import CHART, ROOT


def test_the_charts_crds_are_the_committed_crds_byte_for_byte() -> None:
    source = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    copied = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert copied == source, "run `make crds` and commit the result"
    for name in source:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"charts/llmcache/crds/{name} differs from crds/{name}: run `make crds` and commit the result"
        )
