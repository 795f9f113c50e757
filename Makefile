# Everything runs from a virtual environment inside the checkout; only Python 3.11
# and the package registries are needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export IMPTRACK_HOME ?= $(CURDIR)/var

.PHONY: demo up down status test faults check format clean bench soak browser

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	IMPTRACK_HOME=$(CURDIR)/var/demo $(BIN)/imptrack demo

up: $(STAMP)
	$(BIN)/imptrack up

down: $(STAMP)
	$(BIN)/imptrack down

# `imptrack status` exits 1 when nothing runs (for scripts); here its line says so.
status: $(STAMP)
	@$(BIN)/imptrack status || true

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The dashboard's browser test (tests/integration/test_dashboard.py) drives Debian's
# chromium through chromium-driver. Installed here as the rest of `make test`'s needs
# are (CI runs as root); without root it says what to install, and make test stops.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make test needs Debian's $(BROWSER_PACKAGES) for the dashboard's browser test;"; \
		echo "install them as root: apt-get install $(BROWSER_PACKAGES)"; exit 1; \
	fi; \
	echo "installing $(BROWSER_PACKAGES) for the dashboard's browser test"; \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; } \
		|| { echo "could not install $(BROWSER_PACKAGES) with apt-get (above: why)"; exit 1; }; \
	[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
		|| { echo "apt-get installed $(BROWSER_PACKAGES) but /usr/bin/chromium or /usr/bin/chromedriver is missing"; exit 1; }

# The crash suite at full size (README, "The crash suite"), with the broker-kill round
# on a 3-node Kafka; `make test` runs the component kills short. 60,000: the worker
# records 150-260 impressions/s on Kafka and 2 cores, so this is minutes of backlog
# across the kills (200,000 was sized for the embedded broker's 1,500/s). Then
# schemathesis against the admin and stats APIs' OpenAPI documents.
faults: $(STAMP)
	FAULTS_IMPRESSIONS=60000 $(BIN)/python -m pytest -q -s -m "" \
		tests/integration/test_crash_suite.py tests/integration/test_openapi_conformance.py

# Benchmarks against bare baselines (bench/README.md); QUICK=1 for a smoke run.
bench: $(STAMP)
	QUICK=$(QUICK) $(BIN)/python -m bench

# The soak (bench/README.md): SOAK_SECONDS (1800) at half the capacity it measures first.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
