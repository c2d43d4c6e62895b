"""Keep dnsmasq's hosts file equal to the cluster's Services: the test node's cluster DNS.

No CoreDNS exists here (not in Debian, not in the source tree), so the node runs
dnsmasq answering from a hosts file, and this loop rewrites that file once a second
from the Services the API server lists (`<name>.<namespace>.svc.cluster.local`, plus
the static `extra` lines: the provider names the tier points at its fake origins), and
sends dnsmasq SIGHUP when it changed. Headless Services get no record.

Run by `tests.node.cluster` as a tracked process; it stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.node.layout import CLUSTER_DOMAIN

PERIOD_S = 1.0


def render(services: list[dict[str, object]], extra: str) -> str:
    lines = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        assert isinstance(meta, dict) and isinstance(spec, dict)
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        lines.append(f"{ip} {meta['name']}.{meta['namespace']}.svc.{CLUSTER_DOMAIN}")
    return "".join(f"{line}\n" for line in sorted(lines)) + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--hosts", type=Path, required=True)
    parser.add_argument("--extra", type=Path, required=True)
    parser.add_argument("--dnsmasq-pid-file", type=Path, required=True)
    args = parser.parse_args()
    config = json.loads(args.kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    request = urllib.request.Request(
        cluster["server"] + "/api/v1/services", headers={"Authorization": f"Bearer {user['token']}"}
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                services = json.loads(response.read())["items"]
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            print(f"dnssync: listing Services failed: {exc}", flush=True)
        else:
            text = render(services, args.extra.read_text() if args.extra.exists() else "")
            if not args.hosts.exists() or args.hosts.read_text() != text:
                partial = args.hosts.with_suffix(".partial")
                partial.write_text(text)
                partial.replace(args.hosts)
                pid = json.loads(args.dnsmasq_pid_file.read_text())["pid"]
                os.kill(pid, signal.SIGHUP)
                print(f"dnssync: {text.count(chr(10))} names", flush=True)
        time.sleep(PERIOD_S)


if __name__ == "__main__":
    main()
