# pylme_alliance: `make demo` and `make test` set everything up first (scripts/setup.sh).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# A conda env made by setup (./.conda-env) provides R: put it on PATH for every recipe.
WITH_ENV = if [ -x "$(CURDIR)/.conda-env/bin/Rscript" ]; then export PATH="$(CURDIR)/.conda-env/bin:$$PATH"; fi;
PYTEST_ARGS ?=

.PHONY: setup test test-debian13 lint demo doctor bench golden wheel clean distclean help

help:
	@echo "make demo | test | test-debian13 | lint | setup | doctor | bench | golden | wheel | clean | distclean"

setup:
	@PYTHON="$(PYTHON)" bash scripts/setup.sh

test: setup
	@$(WITH_ENV) timeout=""; \
	if $(VPY) -c "import pytest_timeout" 2>/dev/null; then timeout="--timeout=900"; fi; \
	$(VPY) -m pytest -q $$timeout $(PYTEST_ARGS)

# ruff (rules in pyproject.toml) and the architecture contracts (import-linter: layers, no cycles)
lint: setup
	@$(VENV)/bin/ruff check src tests benchmarks
	@$(VENV)/bin/lint-imports

# The second lane: the suite on Debian 13 (R 4.5, rpy2 3.6, Python 3.13) in a cached debootstrap
# root (needs root; first run builds it, a few minutes). Tests the committed HEAD.
test-debian13:
	@PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test-debian13.sh

demo: setup
	@$(WITH_ENV) $(VENV)/bin/pylme-alliance demo --out demo-report
	@echo "demo report written to $(CURDIR)/demo-report/"

doctor:
	@$(WITH_ENV) if [ -x $(VENV)/bin/pylme-alliance ]; then $(VENV)/bin/pylme-alliance doctor; \
	else PYTHONPATH=src $(PYTHON) -m pylme_alliance.cli doctor; fi

bench: setup
	@$(WITH_ENV) shopt -s nullglob; files=(benchmarks/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no benchmarks/*.py"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(VPY) "$$f" || exit $$?; done

golden: setup
	@$(WITH_ENV) Rscript tests/r/make_golden.R

wheel:
	@if [ -x $(VPY) ]; then py=$(VPY); else py=$(PYTHON); fi; \
	$$py -m pip wheel -q --no-deps -w dist . && ls dist/*.whl

clean:
	rm -rf build dist demo-report .pytest_cache .hypothesis src/*.egg-info
	find . -path ./.venv -prune -o -path ./.conda-env -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .conda-env
