# The README's two commands: `make run` and `make test`. Each does all its own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint services bench clean

# A virtual environment with the package installed editable (re-done when pyproject changes).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

## run: set up and run the service on its embedded default (SQLite practice databases, a local SMTP sink)
run: $(STAMP)
	$(BIN)/email-service demo

## test: set up, start the test servers, lint, type-check and run the whole test suite
test: $(STAMP) services lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

services:
	bash scripts/test-services.sh
	bash scripts/odbc-setup.sh

## bench: the benchmarks in bench/, each printing its figure beside its baseline
bench: $(STAMP) services
	$(BIN)/python bench/events.py
	$(BIN)/python bench/supervision.py
	$(BIN)/python bench/mail.py
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/longrun.py --quick
	$(BIN)/python bench/journal_mode.py

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
