"""The test node: a single-node Kubernetes 1.20 cluster on this machine (the e2e_node tier)."""
