# Slipway: the two commands are `make up` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SLIPWAY := $(VENV)/bin/slipway
export PATH := /usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

.PHONY: up down install install-test docker images test test-fast lint bench bench-density clean-test

install:
	@bash scripts/install.sh

install-test:
	@bash scripts/install.sh --test

docker:
	@bash scripts/start-docker.sh

images: install docker
	@$(SLIPWAY) server images build

## Start the whole platform on embedded defaults; prints the dashboard URL and the admin token.
up: images
	@$(SLIPWAY) server up

## Stop the platform (apps' containers keep their state and come back with `make up`).
down:
	@if [ -x $(SLIPWAY) ]; then $(SLIPWAY) server down; fi

lint: install-test
	@echo "-----> ruff"
	@$(VENV)/bin/ruff check platform tests navi bench
	@$(VENV)/bin/ruff format --check platform tests navi bench
	@echo "-----> mypy"
	@$(VENV)/bin/mypy

## Every test, the slow real-infrastructure ones included (CI runs them all).
test: install-test docker
	@$(SLIPWAY) server images build
	@$(MAKE) --no-print-directory lint
	@echo "-----> pytest"
	@$(VENV)/bin/pytest tests

## Only the fast unit tests.
test-fast: install-test
	@$(VENV)/bin/pytest tests/unit

bench: install-test docker
	@$(SLIPWAY) server images build
	@timeout --signal=INT --kill-after=120 900 $(PY) -m bench.run

## Density (issue 14): 300 apps deployed, all but a few asleep; too long for `make bench`'s budget.
bench-density: install-test docker
	@$(SLIPWAY) server images build
	@timeout --signal=INT --kill-after=300 3000 $(PY) -m bench.run --only density \
		--density-apps 300 --budget 2700 --output bench/RESULTS-density.md
