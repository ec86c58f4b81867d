# The two commands a newcomer needs: `make run` and `make test`.
# Everything else they depend on is installed here, into .venv and node_modules.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run run-lanes test screenshots chromium lint typecheck format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; \
	else npm install --no-audit --no-fund --loglevel=error; fi
	touch $@

## run: serve function_app.py on the embedded runtime at 127.0.0.1:7071 until Ctrl-C.
run: $(STAMP) local.settings.json
	$(BIN)/duralane run --app function_app.py --host 127.0.0.1 --port 7071 --data-dir .duralane

## run-lanes: as run, with the high lane in a runtime process of its own on port 7072.
# Both share the app's store; each takes any lane's jobs and passes them on.
RUN_APP := $(BIN)/duralane run --app function_app.py --host 127.0.0.1
LANE_STORE := DURALANE_SQLITE_PATH=.duralane/state.sqlite3
run-lanes: $(STAMP) local.settings.json
	@trap 'kill $$high 2>/dev/null; wait' EXIT; \
	DURALANE_LANE=high DURALANE_LOG_TAG=high $(LANE_STORE) \
		$(RUN_APP) --port 7072 --data-dir .duralane/high \
		--peer DuralaneNormal=http://127.0.0.1:7071 \
		--peer DuralaneLow=http://127.0.0.1:7071 & high=$$!; \
	DURALANE_LANE=normal,low DURALANE_LOG_TAG=normal,low $(LANE_STORE) \
		$(RUN_APP) --port 7071 --data-dir .duralane \
		--peer DuralaneHigh=http://127.0.0.1:7072

local.settings.json:
	cp local.settings.sample.json $@

## test: style, types and the whole test suite, with every local service it needs.
test: $(STAMP) $(NODE_STAMP) chromium lint typecheck
	$(BIN)/python -m pytest

# The dashboard's browser tests drive Debian's Chromium; Playwright never downloads one.
# Root installs it directly; anyone else (a hosted CI runner) through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

## screenshots: refresh docs/screenshots from the dashboard's browser tests.
screenshots: $(STAMP) $(NODE_STAMP) chromium
	DURALANE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/dashboard

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: every benchmark, with the optional peers they compare against.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .duralane .pytest_cache .mypy_cache .ruff_cache
