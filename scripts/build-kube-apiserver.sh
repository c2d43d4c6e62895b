#!/usr/bin/env bash
# Build and cache kube-apiserver v1.20.2 for the e2e_k8s tier: scripts/build-kubernetes.sh
# does the work (and, with `node`, also builds the binaries of the e2e_node tier).
exec "$(dirname "${BASH_SOURCE[0]}")/build-kubernetes.sh" kube-apiserver
