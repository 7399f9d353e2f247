# Two entry points: `make demo` runs the platform with its demo, `make test` runs every test.
# Both work from a fresh clone with only Python 3.11 and the package registries.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_HOME ?= .himalia-demo
PORT ?= 8888
SMTP_PORT ?= 8025

.PHONY: install system-deps demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[demo,test,dev]"
	touch $@

install: $(VENV)/.installed

## PostgreSQL server binaries for the test suite (Debian's package; the tests start the server).
system-deps:
	@scripts/install-system-deps.sh

demo: install
	HIMALIA_HOME=$(DEMO_HOME) $(BIN)/himalia demo
	HIMALIA_HOME=$(DEMO_HOME) $(BIN)/himalia --as alice scenario apply FRAUD scenarios/daily-fraud-scoring.yaml
	@echo "Mail the scenarios send lands in $(DEMO_HOME)/mail/ (a local SMTP server on port $(SMTP_PORT))."
	@echo "Open the URL printed below; the API lives under /himalia/api/v1/ (see /himalia/api/v1/openapi.json)."
	$(BIN)/python -m himalia.mailsink --port $(SMTP_PORT) --folder $(DEMO_HOME)/mail & SINK=$$!; \
	trap 'kill $$SINK' EXIT INT TERM; \
	HIMALIA_HOME=$(DEMO_HOME) HIMALIA_SMTP_HOST=127.0.0.1 HIMALIA_SMTP_PORT=$(SMTP_PORT) \
	$(BIN)/jupyter server --no-browser --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root,)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install system-deps lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .mypy_cache .ruff_cache
