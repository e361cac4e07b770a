# Every target installs what it needs first: `make test` on a fresh machine works from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

include toolchain/versions.env

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(CURDIR)/$(BIN):$(PATH)

# pytest arguments, e.g. `make test PYTEST_ARGS="-m unit -x"`.
PYTEST_ARGS ?=
# Extra arguments for `make run` / `make demo`, e.g. `make run ARGS="--api-port 8080"`.
ARGS ?=

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# A new package (its __init__.py) re-runs the editable install so its import path is known.
$(VENV)/.installed: requirements.lock pyproject.toml $(wildcard services/*/__init__.py operator/*/__init__.py)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version)); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the locked dependencies and this project, editable.

.PHONY: tools
tools: ## Install the pinned toolchain into .tools/bin (cached; a second run does nothing).
	@toolchain/install.sh

.PHONY: lock
lock: venv ## Re-resolve requirements.lock from pyproject.toml.
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

.PHONY: run
run: venv tools ## Bring the platform up locally, in the foreground (Ctrl-C stops everything).
	$(BIN)/devstack up $(ARGS)

.PHONY: cluster
cluster: venv tools ## A real single-node Kubernetes with both charts installed, in the foreground.
	$(BIN)/devstack cluster $(ARGS)

.PHONY: images
images: tools ## Build every container image here from Debian, PyPI, Maven and Go (docs/images.md).
	$(PYTHON) images/build.py $(foreach i,$(IMAGES),--only $(i))

.PHONY: kind-image
kind-image: tools ## Opt-in: a kind node image built here, kubeadm and kind (docs/cluster.md "## kind").
	$(PYTHON) images/kind_node.py

.PHONY: demo
demo: venv ## With `make run` up: submit sample applications and print each final status.
	$(BIN)/prequalctl demo $(ARGS)

.PHONY: test
test: venv tools ## Run every test tier against real PostgreSQL, Kafka, Kubernetes and Prometheus.
ifeq ($(strip $(PYTEST_ARGS)),)
	tests/lanes.sh $(BIN)/pytest $(CURDIR)/.pytest-tmp
else
	$(BIN)/pytest --basetemp=$(CURDIR)/.pytest-tmp $(PYTEST_ARGS)
	$(BIN)/python -m tests.leakscan $(CURDIR)/.pytest-tmp
endif

.PHONY: bench
bench: venv tools ## Run the benchmarks; figures go to one JSON file whose path is printed.
	$(BIN)/python bench/run.py $(if $(BENCH),--only $(BENCH))

.PHONY: chaos
chaos: venv tools ## Faults while applications flow, then check nothing was lost (docs/chaos.md).
	$(BIN)/python -m bench.chaos $(ARGS)

.PHONY: lint
lint: venv ## ruff, mypy (strict) and import-linter.
	$(BIN)/ruff check services operator tests bench images
	$(BIN)/ruff format --check services operator tests bench images
	$(BIN)/mypy
	$(BIN)/mypy images/runtime-requirements.py
	# The image scripts import their sibling modules (workspace, catalog, sources, build) by
	# name, as they run; kind_node.py imports build.py too, hence two runs.
	MYPYPATH=images $(BIN)/mypy images/build.py
	MYPYPATH=images $(BIN)/mypy images/kind_node.py
	$(BIN)/lint-imports

.PHONY: fmt
fmt: venv ## Format and auto-fix what ruff can.
	$(BIN)/ruff format services operator tests bench images
	$(BIN)/ruff check --fix services operator tests bench images

.PHONY: clean
clean: ## Remove .venv, .tools and .run (the toolchain cache in ~/.cache/loan-prequal stays).
	rm -rf $(VENV) .tools .run .pytest-tmp .pytest_cache .mypy_cache .ruff_cache
