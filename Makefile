# llmcache — everything a user or CI runs goes through these targets.
# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?=

PACKAGES := -e "sidecar[all]" -e embedder

.PHONY: help venv run test lint format system-deps demo bench clean

help:
	@echo "make run     start the sidecar on 127.0.0.1:8787 (admin 127.0.0.1:8788); CONFIG=file.yaml to configure"
	@echo "make test    install everything the tests need, lint, run the whole suite"
	@echo "make demo    offline demo: a fake provider, the sidecar, the openai SDK asking twice"
	@echo "make bench   hit/miss latency and throughput, RSS (figures in docs/benchmarks.md)"
	@echo "make lint    ruff, mypy --strict, import-linter"

$(STAMP): sidecar/pyproject.toml embedder/pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt $(PACKAGES)
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/llmcache-sidecar $(if $(CONFIG),--config $(CONFIG))

system-deps:
	scripts/install-test-servers.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sidecar/src
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

bench: $(STAMP) system-deps
	$(BIN)/python -m bench.sidecar

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
