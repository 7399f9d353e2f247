# Two entry points: `make demo` runs the platform with its demo, `make test` runs every test.
# Both work from a fresh clone with only Python 3.11, Node.js and the package registries.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every port and folder of the two demos; they share none, so both can run at once.
# `make lab LAB_PORT=8890` moves one; a port already taken stops the start with its variable named.
LAB_HOME ?= .himalia-demo
LAB_PORT ?= 8888
LAB_SMTP_PORT ?= 8025
HUB_STATE ?= .himalia-hub
HUB_PORT ?= 8000
HUB_API_PORT ?= 8081
HUB_PROXY_API_PORT ?= 8001
HUB_SERVICE_PORT ?= 10101
HUB_SMTP_PORT ?= 8026
IDP_PORT ?= 9000

AS_ROOT := $(filter 0,$(shell id -u))
# Notebook steps run as each person's OS account, which needs root; an ordinary user's lab shares its
# account instead (unsafe: notebooks reach the lab's files), as hub_config/jupyterhub_config.py does.
SHARED_ACCOUNT_UNLESS_ROOT := $(if $(AS_ROOT),,HIMALIA_USER_ISOLATION=shared_account_unsafe)

.PHONY: install system-deps share-python demo lab test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installing the package builds the lab extension (npm, via hatch-jupyter-builder) into
# server_ext/himalia/labextension and the administration application into
# server_ext/himalia/hosts/admin/static, so any change to their sources reinstalls.
EXTENSION_SOURCES := package.json package-lock.json tsconfig.json admin.webpack.config.js $(shell find jupyter_ext -type f 2>/dev/null)

$(VENV)/.installed: pyproject.toml $(EXTENSION_SOURCES) hub_config/dev-idp/package-lock.json | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[demo,hub,kubernetes,test,dev]"
	npm ci --prefix hub_config/dev-idp --silent
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/jupyter labextension develop --overwrite . >/dev/null
	touch $@

install: $(VENV)/.installed

## PostgreSQL server binaries for the test suite (Debian's package; the tests start the server).
system-deps:
	@scripts/install-system-deps.sh

## Accounts other than root (each person's, for notebooks and servers) must reach the Python environment.
share-python: install
	@scripts/share-python.sh

## The multi-user platform: the dev OpenID Connect provider, JupyterHub, its proxy, the Himalia service.
demo: install share-python
	@$(BIN)/python -m himalia.demo.ports --for "make demo" HUB_PORT=$(HUB_PORT) HUB_API_PORT=$(HUB_API_PORT) \
	  HUB_PROXY_API_PORT=$(HUB_PROXY_API_PORT) HUB_SERVICE_PORT=$(HUB_SERVICE_PORT) HUB_SMTP_PORT=$(HUB_SMTP_PORT) \
	  IDP_PORT=$(IDP_PORT)
	HIMALIA_HOME=$(HUB_STATE)/himalia $(BIN)/himalia demo
	HIMALIA_HOME=$(HUB_STATE)/himalia $(BIN)/himalia --as alice scenario apply FRAUD scenarios/daily-fraud-scoring.yaml
	HIMALIA_HOME=$(HUB_STATE)/himalia $(BIN)/himalia --as alice scenario apply FRAUD scenarios/hourly-merchant-checks.yaml
	@echo "Sign in at http://127.0.0.1:$(HUB_PORT) as alice (admin), bob (analyst) or carol (reader); password: himalia-demo."
	@echo "Mail the scenarios send lands in $(HUB_STATE)/mail/ (a local SMTP server on port $(HUB_SMTP_PORT))."
	IDP_PORT=$(IDP_PORT) IDP_HUB_PORT=$(HUB_PORT) node hub_config/dev-idp/server.mjs & IDP=$$!; \
	$(BIN)/python -m himalia.demo.mailsink --port $(HUB_SMTP_PORT) --folder $(HUB_STATE)/mail & SINK=$$!; \
	trap 'kill $$IDP $$SINK' EXIT INT TERM; \
	HIMALIA_HUB_STATE=$(HUB_STATE) HIMALIA_HUB_PORT=$(HUB_PORT) HIMALIA_HUB_API_PORT=$(HUB_API_PORT) \
	HIMALIA_PROXY_API_PORT=$(HUB_PROXY_API_PORT) HIMALIA_SERVICE_PORT=$(HUB_SERVICE_PORT) \
	HIMALIA_OIDC_ISSUER=http://127.0.0.1:$(IDP_PORT) HIMALIA_SMTP_HOST=127.0.0.1 HIMALIA_SMTP_PORT=$(HUB_SMTP_PORT) \
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/jupyterhub -f hub_config/jupyterhub_config.py

## One person, no hub: JupyterLab with the control plane in-process (standalone mode).
lab: install share-python
	@$(BIN)/python -m himalia.demo.ports --for "make lab" LAB_PORT=$(LAB_PORT) LAB_SMTP_PORT=$(LAB_SMTP_PORT)
	HIMALIA_HOME=$(LAB_HOME) $(BIN)/himalia demo
	HIMALIA_HOME=$(LAB_HOME) $(BIN)/himalia --as alice scenario apply FRAUD scenarios/daily-fraud-scoring.yaml
	HIMALIA_HOME=$(LAB_HOME) $(BIN)/himalia --as alice scenario apply FRAUD scenarios/hourly-merchant-checks.yaml
	@echo "Open the URL printed below: the Himalia sidebar is the moon on the left; the API lives under /himalia/api/v1/."
	@echo "Mail the scenarios send lands in $(LAB_HOME)/mail/ (a local SMTP server on port $(LAB_SMTP_PORT))."
	$(BIN)/python -m himalia.demo.mailsink --port $(LAB_SMTP_PORT) --folder $(LAB_HOME)/mail & SINK=$$!; \
	trap 'kill $$SINK' EXIT INT TERM; \
	HIMALIA_HOME=$(LAB_HOME) HIMALIA_SMTP_HOST=127.0.0.1 HIMALIA_SMTP_PORT=$(LAB_SMTP_PORT) $(SHARED_ACCOUNT_UNLESS_ROOT) \
	$(BIN)/jupyter lab --no-browser --port $(LAB_PORT) --ServerApp.port_retries=0 $(if $(AS_ROOT),--allow-root,)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	npm run --silent lint
	PATH=$(abspath $(BIN)):$$PATH scripts/check-api-types.sh

## Unit tests of the extension (jest), then every Python test in three pytest processes side by
## side: the browser tests (tests/ui, in Chromium: mostly waiting on servers and browsers), the
## tests that run scenarios and kernels with the API fuzzing, and the rest: about 14 minutes
## each. The first two print after the rest, each names its slowest tests (JUnit reports in
## test-artifacts/), and any failing fails the target.
ENGINE_TESTS = tests/scenarios tests/execution tests/kernel tests/cli tests/demo tests/bundles tests/api
PYTEST_REPORT = --durations=15 --junitxml=test-artifacts/$(1).xml
test: install system-deps share-python lint
	npm test --silent
	@mkdir -p test-artifacts
	$(BIN)/pytest tests/ui $(call PYTEST_REPORT,ui) > test-artifacts/ui-tests.log 2>&1 & BROWSER=$$!; \
	$(BIN)/pytest $(ENGINE_TESTS) $(call PYTEST_REPORT,engine) > test-artifacts/engine-tests.log 2>&1 & ENGINE=$$!; \
	$(BIN)/pytest --ignore=tests/ui $(addprefix --ignore=,$(ENGINE_TESTS)) $(call PYTEST_REPORT,rest); REST=$$?; \
	wait $$ENGINE; ENGINE_STATUS=$$?; \
	echo "======== scenario, kernel and fuzzing tests ($(ENGINE_TESTS)), run beside the rest ========"; \
	cat test-artifacts/engine-tests.log; \
	wait $$BROWSER; BROWSER_STATUS=$$?; \
	echo "======== browser tests (tests/ui), run beside the rest ========"; cat test-artifacts/ui-tests.log; \
	exit $$(( REST != 0 || ENGINE_STATUS != 0 || BROWSER_STATUS != 0 ))

clean:
	rm -rf $(VENV) $(LAB_HOME) $(LAB_HOME)-data $(HUB_STATE) .himalia-design .himalia-design-data .himalia-production *.himalia-bundle hub_config/dev-idp/node_modules .pytest_cache .mypy_cache .ruff_cache node_modules lib build server_ext/himalia/labextension test-artifacts
