# The few commands a user types. Each one sets up the locked environment first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
export LOOPLINE_HOME ?= $(CURDIR)/.loopline
# Package caches stay in the state folder too: nothing is written to the home directory.
export UV_CACHE_DIR ?= $(LOOPLINE_HOME)/cache/uv
export PIP_CACHE_DIR ?= $(LOOPLINE_HOME)/cache/pip
export UV_PYTHON ?= 3.11
export UV_PYTHON_DOWNLOADS := never
export PATH := $(CURDIR)/.venv/bin:$(PATH)

UV := $(shell command -v uv 2>/dev/null || echo $(LOOPLINE_HOME)/tools/bin/uv)

.PHONY: help setup up demo test test-fast bench lint audit format services clean

help:
	@echo "make up     set up, bootstrap on first run, start the platform (Ctrl-C stops it)"
	@echo "make demo   the loop once, a served prediction, then the drift story: detect, retrain, canary"
	@echo "make test   set up and run the whole test suite"
	@echo "make bench  measure and write docs/benchmarks.md"
	@echo "make lint   ruff and mypy"
	@echo "make audit  bandit on src/, pip-audit on the locked environment (ARGS=--strict)"

$(LOOPLINE_HOME)/tools/bin/uv:
	$(PYTHON) -m venv $(LOOPLINE_HOME)/tools
	$(LOOPLINE_HOME)/tools/bin/pip install --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	@touch $@

setup: .venv/.synced

# V=1 shows third-party warnings and tool output too (else: .loopline/logs/console.log).
up: setup
	loopline $(if $(V),--verbose) up $(ARGS)

demo: setup
	loopline $(if $(V),--verbose) demo --story

# PostgreSQL (registry and Feast profile tests), Redis (Feast's Redis profile), Chromium
# (browser tests) and wrk (HTTP load).
services:
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_redis.sh
	bash scripts/ensure_chromium.sh
	bash scripts/ensure_wrk.sh
	bash scripts/ensure_promtool.sh
	bash scripts/ensure_kubectl.sh

test: setup services
	UV=$(UV) bash scripts/checkov.sh --install
	pytest

bench: setup
	bash scripts/ensure_wrk.sh
	python benchmarks/run.py

audit: setup
	UV=$(UV) bash scripts/audit.sh $(ARGS)

lint: setup
	ruff check .
	ruff format --check .
	mypy

format: setup
	ruff check --fix .
	ruff format .

clean:
	rm -rf $(LOOPLINE_HOME) data artifacts
