# Two commands on a fresh machine: `make demo` and `make test` (both run setup first).
VENV   := .venv
GAI    := $(VENV)/bin/gai
PY     := $(VENV)/bin/python
export GAI_HOME ?= $(CURDIR)/var

.PHONY: help setup demo test test-fast lint format bench clean

help:
	@echo "make setup   install everything (idempotent): Debian services, .venv, hub proxy"
	@echo "make demo    setup, then the platform demo (PACS -> store -> models -> MLflow -> report -> hub)"
	@echo "make test    setup, then lint and the whole test suite (real services on loopback)"
	@echo "make bench   setup, then the benchmarks in benchmarks/"
	@echo "make clean   stop the site PACS and remove var/ (the demo's platform home)"

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/test.sh

# quick loop while developing: no slow end-to-end tests
test-fast: setup
	@bash scripts/test.sh -m "not slow"

lint: setup
	$(VENV)/bin/ruff check gai_research tests benchmarks
	$(VENV)/bin/ruff format --check gai_research tests benchmarks

format: setup
	$(VENV)/bin/ruff format gai_research tests benchmarks
	$(VENV)/bin/ruff check --fix gai_research tests benchmarks

bench: setup
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c constraints.txt -e '.[dev,bench]'
	@bash scripts/bench.sh

clean:
	-@[ -x $(GAI) ] && $(GAI) hub stop >/dev/null 2>&1 || true
	-@[ -x $(GAI) ] && $(GAI) models simulators down >/dev/null 2>&1 || true
	-@[ -x $(GAI) ] && $(GAI) pacs down >/dev/null 2>&1 || true
	rm -rf var
