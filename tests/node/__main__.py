"""`python -m tests.node up|down|leftovers`: the test node by hand, for debugging.

`up` starts the node and prints how to reach it (KUBECONFIG, DOCKER_HOST); `down` removes
everything it made (also after a crashed test run); `leftovers` lists what `down` should
have removed and did not.
"""

from __future__ import annotations

import argparse
import sys

from tests.node import cluster
from tests.node.layout import Layout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "leftovers"])
    args = parser.parse_args()
    layout = Layout.default()
    if args.command == "up":
        node = cluster.up(layout)
        print(f"export KUBECONFIG={node.kubeconfig} DOCKER_HOST={node.docker_host}")
        print(f"logs: {layout.logs}")
    elif args.command == "down":
        cluster.down(layout)
    else:
        found = cluster.leftovers(layout)
        for line in found:
            print(line)
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
