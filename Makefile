# ragfleet — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
PYTEST_ARGS ?=

.PHONY: help deps run stop test test-unit lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps:  ## install uv, the virtualenv, Redis and NGINX where missing
	@bash tools/bootstrap.sh

run: deps  ## start the whole suite on this machine (embedded index); Ctrl-C stops it
	$(UV) run python -m ragfleet.devstack run

stop:  ## stop a `make run` started in another terminal
	$(UV) run python -m ragfleet.devstack stop

test: deps  ## unit, integration and end-to-end tests (starts real processes on loopback)
	$(UV) run pytest $(PYTEST_ARGS)

test-unit: deps  ## only the tests that start no process
	$(UV) run pytest -m "not integration" $(PYTEST_ARGS)

lint: deps  ## ruff (lint + format check) and mypy
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy services tools

format:  ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

clean:  ## remove run state (logs, Redis and index data under .run/)
	rm -rf .run
