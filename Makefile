# llmcache — everything a user or CI runs goes through these targets.
# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
CONFIG ?=

# Every install comes from the one lock, uv.lock (make lock regenerates it; README "Dependencies").
# uv itself is installed by pip from requirements/uv.txt, pinned with hashes, into .tools/uv.
UV        := .tools/uv/bin/uv
LOCKED    := uv.lock pyproject.toml sidecar/pyproject.toml operator/pyproject.toml embedder/pyproject.toml
UV_SYNC   := $(UV) sync --frozen --python $(PYTHON)
# uv checks TLS against the system's certificate store (as pip does), not its own bundled roots.
export UV_SYSTEM_CERTS ?= 1

.PHONY: help venv run run-operator crds images test test-lowest lint lock lock-check format system-deps tools kube-apiserver kubernetes node-deps e2e-k8s e2e-node node-up node-down demo bench bench-install bench-semantic eval-semantic clean

help:
	@echo "make run     start the sidecar on 127.0.0.1:8787 (admin 127.0.0.1:8788); CONFIG=file.yaml to configure"
	@echo "make test    install everything the tests need, lint, run the whole suite"
	@echo "make test-lowest  the sidecar's own tests with its dependencies at their lowest allowed versions"
	@echo "make demo    offline demo: a fake provider, the sidecar, the openai SDK asking twice"
	@echo "make bench   hit/miss latency and throughput, RSS, a large answer's peak RSS (docs/benchmarks.md, docs/security.md)"
	@echo "make bench-install   make test's Python install from the lock: pip vs uv, cold and warm caches"
	@echo "make bench-semantic  sidecar RSS per stored prompt and a lookup's CPU (figures in docs/semantic.md)"
	@echo "make lint    ruff, mypy --strict, import-linter"
	@echo "make lock    re-resolve uv.lock after a pyproject.toml changed (make lock UPGRADE=1: newest allowed versions)"
	@echo "make crds    regenerate crds/ (and the chart's copy) from the config model"
	@echo "make images  build the sidecar, operator, redirect, embedder and quickstart images (needs a Docker engine)"
	@echo "make run-operator  run the operator against the current kubeconfig"
	@echo "make e2e-k8s build (once, cached in ~/.cache) a kube-apiserver 1.20 and run the end-to-end tier against it"
	@echo "make e2e-node  a real single-node cluster here: images, helm install, apps calling through (docs/e2e-node.md)"
	@echo "make node-up / node-down  that cluster by hand, for debugging (root)"
	@echo "make eval-semantic  paraphrase hits and near-miss false hits, raw cosine vs the matcher, real model"

$(UV): requirements/uv.txt
	test -x .tools/uv/bin/python || $(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/uv.txt
	touch $@

# A pyproject.toml changed without `make lock`: stop before installing anything stale.
lock-check: $(UV)
	@$(UV) lock --check --offline >/dev/null 2>&1 || { \
		echo "uv.lock does not match the pyproject.toml files: a dependency changed. Run 'make lock' and commit uv.lock and requirements/." >&2; \
		exit 1; }

lock: $(UV)
	UV=$(UV) $(PYTHON) scripts/lock.py $(if $(UPGRADE),--upgrade)

# `make run` needs only the sidecar; `make test` adds everything the suite runs (the real
# embedding model included), into the same .venv. Both from the lock, never re-resolved.
$(RUN_STAMP): $(UV) $(LOCKED)
	@$(MAKE) --no-print-directory lock-check
	$(UV_SYNC) --inexact --no-default-groups --group run
	touch $@

$(STAMP): $(UV) $(LOCKED)
	@$(MAKE) --no-print-directory lock-check
	$(UV_SYNC)
	touch $(RUN_STAMP) $@

venv: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/llmcache-sidecar $(if $(CONFIG),--config $(CONFIG))

# The operator against the current kubeconfig (kopf run). Its webhook is off unless you set
# LLMCACHE_OPERATOR_WEBHOOK=on and give it a certificate (see docs/operator.md).
run-operator: $(STAMP)
	LLMCACHE_OPERATOR_WEBHOOK=$${LLMCACHE_OPERATOR_WEBHOOK:-off} $(BIN)/python -m llmcache_operator

# The CRD is generated from the sidecar's config model; a test fails when the committed one drifts.
crds: $(STAMP)
	$(BIN)/python -m llmcache_operator.crd
	cp crds/*.yaml charts/llmcache/crds/

# Container images from the repository's Dockerfiles (scripts/images.sh says which variables it
# passes on: a package mirror, other bases, the build network). Needs a Docker engine; the
# e2e_node tier runs it against the test node's own daemon.
images:
	scripts/images.sh

system-deps:
	scripts/install-test-servers.sh

tools:
	scripts/fetch-tools.sh

kube-apiserver:
	scripts/build-kube-apiserver.sh

# kube-apiserver and a whole node (kubelet, controller-manager, scheduler, kube-proxy, kubectl,
# pause) from one source tree, cached in ~/.cache/llmcache-k8s (about 10 min once on 2 cores).
kubernetes:
	scripts/build-kubernetes.sh node

# What the test node needs from Debian: docker, CNI plugins, dnsmasq, debootstrap, iptables.
node-deps:
	scripts/node/install-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sidecar/src
	MYPYPATH=operator/src $(BIN)/mypy operator/src
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole suite. The end-to-end Kubernetes tier runs when the kube-apiserver is built
# (make kube-apiserver, or e2e-k8s); CI builds it first and sets REQUIRE_TEST_TOOLS=1
# so that nothing can pass by skipping.
test: $(STAMP) system-deps tools lint
	$(BIN)/python -m pytest

# The sidecar's own tests in a second environment, .venv-lowest, where each of the sidecar's
# direct dependencies is at the lowest version its pyproject.toml allows (requirements/lowest.txt,
# written by make lock). The operator-side tests (which need the operator) run in make test.
LOWEST := .venv-lowest
test-lowest: $(UV) system-deps
	@$(MAKE) --no-print-directory lock-check
	test -x $(LOWEST)/bin/python || $(UV) venv -q --python $(PYTHON) $(LOWEST)
	$(UV) pip sync -q --python $(LOWEST)/bin/python requirements/lowest.txt
	$(LOWEST)/bin/python -m pytest -p no:cacheprovider -m "not model" \
		tests/sidecar tests/e2e tests/backends tests/semantic tests/transparent tests/test_semantic_pairs.py \
		--ignore tests/semantic/test_real_model.py \
		--ignore tests/transparent/test_netns.py --ignore tests/transparent/test_tls_boundaries.py

e2e-k8s: $(STAMP) system-deps tools kube-apiserver
	REQUIRE_TEST_TOOLS=1 $(BIN)/python -m pytest -m e2e_k8s

# The node tier (root): a single-node Kubernetes 1.20 cluster on this machine, the images from
# `make images`, `helm install`, and unmodified apps calling through the sidecar. Whatever
# happens, the node is taken down and checked for leftovers. One test: E2E_NODE_ARGS="-k name".
# Logs (kubelet, docker, every component, and per failed test kubectl describe and pod logs):
# .e2e-node/logs. docs/e2e-node.md.
# One node per machine: a second run waits for the lock (and so never takes down the first's node).
NODE_LOCK := $(HOME)/.cache/llmcache-node.lock
e2e-node: $(STAMP) system-deps tools kubernetes node-deps
	flock $(NODE_LOCK) sh -c 'REQUIRE_TEST_TOOLS=1 $(BIN)/python -m pytest -m e2e_node tests/e2e_node $(E2E_NODE_ARGS); \
		status=$$?; $(BIN)/python -m tests.node down; $(BIN)/python -m tests.node leftovers || status=1; exit $$status'

node-up: $(STAMP) tools kubernetes node-deps
	flock $(NODE_LOCK) $(BIN)/python -m tests.node up

node-down: $(STAMP)
	flock $(NODE_LOCK) $(BIN)/python -m tests.node down

# The demo needs only the sidecar and the openai SDK (not the test suite's install).
demo: $(UV) $(LOCKED)
	@$(MAKE) --no-print-directory lock-check
	$(UV_SYNC) --inexact --no-default-groups --group demo
	$(BIN)/python -m scripts.demo

bench: $(STAMP) system-deps
	$(BIN)/python -m bench.sidecar
	$(BIN)/python -m bench.backends
	$(BIN)/python -m bench.render
	$(BIN)/python -m bench.large_answers

# How long make test's Python install takes from the lock: pip vs uv, cold and warm caches.
bench-install: $(UV)
	UV=$(UV) PYTHON=$(PYTHON) bench/installs.sh

bench-semantic: $(STAMP) system-deps
	$(BIN)/python -m bench.semantic $(BENCH_ARGS)

eval-semantic: $(STAMP)
	$(BIN)/python -m scripts.eval_semantic $(EVAL_ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
