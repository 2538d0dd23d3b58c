# Beacon: `make run` runs the whole stack on this machine, `make test` runs every test.
# Both install what is missing first (Debian 12 / Ubuntu 24.04, as root or with sudo).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Servers and tools the development stack and the tests use.
APT_PACKAGES := postgresql postgresql-client redis-server nginx openssl python3-venv python3-dev \
                build-essential ca-certificates curl chromium wrk prometheus
# The deployment test boots a fresh systemd host.
APT_DEPLOY_PACKAGES := debootstrap systemd-container apt-cacher-ng iproute2

.PHONY: help run test lint unit integration e2e deploy-test deploy-test-multi bench system-deps venv assets clean

help:
	@echo "make run    - run Beacon under ./var: https://localhost:8443/ (Ctrl-C stops it); RUN_ARGS=--free-ports"
	@echo "make test   - lint, type-check and run the whole test suite against real servers"
	@echo "make bench  - run the benchmarks in tests/benchmarks (prints figures); PYTEST_ARGS=<file> runs one"

# Node.js and npm build the browser assets: installed from apt unless both commands exist already
# (a Node.js that bundles its own npm, as NodeSource's does, conflicts with Debian's npm package).
system-deps:
	@missing=""; for p in $(APT_PACKAGES) $(APT_DEPLOY_PACKAGES) $(EXTRA_APT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ -n "$(SUDO)" ] && ! command -v sudo >/dev/null; then \
	    echo "make: missing packages:$$missing; run this as root or install sudo (su -c 'apt-get install sudo')"; exit 1; \
	  fi; \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing && \
	  case " $$missing " in *" prometheus "*) \
	    if [ -d /run/systemd/system ]; then \
	      echo "prometheus is installed for promtool only: its server (which listens on every interface) is stopped and disabled"; \
	      $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	    fi;; \
	  esac; \
	fi

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,deploy]'
	touch $@

venv: $(VENV)/.installed

# Front-end assets: npm packages from package-lock.json, bundled and fingerprinted into app/static/dist/.
FRONTEND := app/frontend
$(FRONTEND)/node_modules/.package-lock.json: $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: run make system-deps (apt-get install nodejs npm)"; exit 1; }
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

assets: $(FRONTEND)/node_modules/.package-lock.json
	node $(FRONTEND)/build.mjs

# RUN_ARGS: options of `python -m app.devstack run`, e.g. RUN_ARGS=--free-ports or RUN_ARGS="--https-port 9443".
run: system-deps venv assets
	$(BIN)/python -m app.devstack run $(RUN_ARGS)

lint: venv
	$(BIN)/ruff check app services workers tests systemd/beacon-reload.py
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd ansible && ../$(BIN)/ansible-lint
	@command -v promtool >/dev/null || { echo "promtool is missing: run make system-deps (apt-get install prometheus)"; exit 1; }
	promtool check rules ansible/roles/beacon_monitoring/files/beacon-alerts.yml
	promtool test rules tests/prometheus/beacon-alerts.test.yml

# The unit and integration tests on TEST_WORKERS processes, each starting its own PostgreSQL and Redis (a file's
# tests stay together, in order); then the whole-stack tests one at a time, as they time restarts and recoveries
# in seconds and the deploy test boots a systemd host. Both parts run even when the first fails; exit status 5
# (PYTEST_ARGS=-k... selected nothing in a part) is no failure.
TEST_WORKERS ?= 2
test: system-deps venv assets lint
	@status=0; \
	CI=$${CI:-} $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20 tests/unit tests/integration \
	  $(PYTEST_ARGS) || { s=$$?; [ $$s -eq 5 ] || status=$$s; }; \
	CI=$${CI:-} $(BIN)/python -m pytest --durations=20 tests/e2e tests/deploy $(PYTEST_ARGS) \
	  || { s=$$?; [ $$s -eq 5 ] || status=$$s; }; \
	exit $$status

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: venv assets
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: venv assets
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

deploy-test: system-deps venv assets
	CI=$${CI:-} $(BIN)/python -m pytest tests/deploy -s $(PYTEST_ARGS)

# Five hosts (3 data, 2 app) on a private bridge, each part powered off under load (not part of `make test`).
deploy-test-multi: system-deps venv assets
	CI=$${CI:-} $(BIN)/python -m pytest tests/deploy_multi -s -p no:randomly $(PYTEST_ARGS)

# PYTEST_ARGS=tests/benchmarks/<file>.py runs one benchmark file instead of all of them.
bench: system-deps venv assets
	$(BIN)/python -m pytest -s -p no:randomly $(or $(PYTEST_ARGS),tests/benchmarks)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(FRONTEND)/node_modules app/static/dist
