# tidegate — every target works on a fresh clone of a new machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install native demo test lint typecheck unit bench tools browser screenshots unleash services clean lock terminal-svg

install: $(STAMP) native

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The evaluator's hot modules compiled with mypyc, in place (docs/performance.md). Optional:
# without a C compiler the build says so and everything runs as pure Python. The script
# rebuilds only when a source changed; TIDEGATE_PURE=1 make install removes the extensions.
native: $(STAMP)
	@$(BIN)/python scripts/build_native.py

# promtool is the oracle of the differential test of our threshold+for semantics; prometheus
# and prometheus-alertmanager run in the source tests (tests/prometheus_server.py,
# tests/alertmanager_server.py).
tools:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus and prometheus-alertmanager packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null; }

# The browser tests (tests/browser.py: the report and the dashboard) drive Debian's Chromium
# with its matching driver, /usr/bin/chromium and /usr/bin/chromedriver; no browser build is
# ever downloaded.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium and chromium-driver packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The README's pictures of the demo's report, taken by the browser test itself.
screenshots: install browser
	TIDEGATE_SCREENSHOTS=docs/img $(BIN)/pytest -q -p no:cacheprovider tests/test_report_browser.py -k phone

# A real open-source Unleash for tests/test_unleash_actuator.py: the npm package pinned by
# tests/unleash/package-lock.json, installed with the machine's Node.js; no install script runs.
UNLEASH_INSTALLED := tests/unleash/node_modules/.package-lock.json
unleash: $(UNLEASH_INSTALLED)

$(UNLEASH_INSTALLED): tests/unleash/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: the Unleash tests skip (and fail with CI=true)"; exit 0; }; \
	npm ci --prefix tests/unleash --ignore-scripts --no-audit --no-fund --loglevel=error

# The store and source tests use the machine's PostgreSQL (127.0.0.1:5432, db test); start it
# when it is down, as the machine's own start-up would.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; }

demo: install
	$(BIN)/tidegate demo

lint: install
	$(BIN)/ruff check controller policies adapters tests bench
	$(BIN)/ruff format --check controller policies adapters tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy --strict controller policies adapters

unit: install tools browser unleash services
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

bench: install
	$(BIN)/python -m bench.run

# docs/img/terminal.svg: the last frame of the live view of `tidegate run` on the demo release.
terminal-svg: install
	$(BIN)/python -m tests.terminal_capture docs/img/terminal.svg

# Re-pin every dependency after editing pyproject.toml.
lock:
	rm -rf /tmp/tidegate-lock && $(PYTHON) -m venv /tmp/tidegate-lock
	/tmp/tidegate-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/tidegate-lock/bin/pip install --quiet 'setuptools>=75'
	/tmp/tidegate-lock/bin/pip freeze --all --exclude-editable | grep -v -e '^-e' -e '^pip==' > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build/native
	$(PYTHON) scripts/build_native.py --remove
