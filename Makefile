# wsloop: `make demo` runs the offline demo, `make test` runs every test.
# Both install what they need into .venv (Python) and tests/node (npm).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp
BROWSER_DIR := tests/browser
BROWSER_STAMP := $(BROWSER_DIR)/node_modules/.installed-stamp

.PHONY: demo test lint typecheck pytest conformance conformance-quick conformance-server install clean \
	bench bench-quick bench-smoke bench-frame test-browser bench-relay bench-relay-quick

install: $(STAMP) $(NODE_STAMP) $(BROWSER_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e . --group dev
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Pyodide (pinned, it carries its runtime: no download at test time) and playwright-core,
# which drives Debian's chromium.
$(BROWSER_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(BROWSER_STAMP)

demo: $(STAMP)
	$(BIN)/python -m wsloop demo

lint: $(STAMP)
	$(BIN)/ruff check src tests compliance examples bench fuzz
	$(BIN)/ruff format --check src tests compliance examples bench fuzz

typecheck: $(STAMP)
	$(BIN)/mypy src

# WSLOOP_REQUIRE_BROWSER=1: a missing Chromium or npm package fails the browser tests
# instead of skipping them.
pytest: $(STAMP) $(NODE_STAMP) $(BROWSER_STAMP)
	WSLOOP_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

test-browser: $(STAMP) $(BROWSER_STAMP)
	WSLOOP_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q tests/browser

# Every Autobahn client case, for every driver that speaks the protocol itself
# (9 to 13 minutes a driver on 2 cores: the compression groups 12 and 13 dominate).
CONFORMANCE_DRIVERS := poll thread asyncio

# The relay's server cases (compliance/run_server.py, about 6 minutes) run in
# parallel with the client drivers' loop, on the other core.
conformance: $(STAMP)
	set -e; mkdir -p reports; \
	$(BIN)/python compliance/run_server.py --timeout 2400 > reports/conformance-server.log 2>&1 & server=$$!; \
	for driver in $(CONFORMANCE_DRIVERS); do \
		$(BIN)/python compliance/run.py --driver $$driver || { wait $$server; exit 1; }; \
	done; \
	status=0; wait $$server || status=$$?; cat reports/conformance-server.log; exit $$status

# Every Autobahn server case against wsloop serve --echo.
conformance-server: $(STAMP)
	$(BIN)/python compliance/run_server.py

# The quick day-to-day subset: everything but the compression groups.
conformance-quick: $(STAMP)
	set -e; for driver in $(CONFORMANCE_DRIVERS); do \
		$(BIN)/python compliance/run.py --driver $$driver --exclude '12.*' '13.*'; \
	done

# Benchmarks against the peer libraries: a separate venv with the peers.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_NODE_STAMP := bench/node_modules/.installed-stamp

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e . -r bench/requirements.txt
	touch $(BENCH_STAMP)

$(BENCH_NODE_STAMP): bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	touch $(BENCH_NODE_STAMP)

bench: $(BENCH_STAMP) $(BENCH_NODE_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py
	$(BENCH_VENV)/bin/python bench/relay_load.py
	$(BENCH_VENV)/bin/python bench/frame_budget.py

# The frame budget alone: the longest poll() and send per scenario (bench/frame_budget.py).
bench-frame: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/frame_budget.py

bench-quick: $(BENCH_STAMP) $(BENCH_NODE_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py --quick

# The harness check that `make test` runs (peers missing from .venv are skipped).
bench-smoke: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/run.py --quick --smoke
	$(BIN)/python bench/frame_budget.py --smoke
	$(BIN)/python bench/relay_load.py --smoke

# How much one relay process holds, against websockets.broadcast and python-socketio.
bench-relay: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/relay_load.py

bench-relay-quick: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/relay_load.py --quick

# The documentation site (guides + API reference from the docstrings) into site/.
# Strict: a broken link or reference fails; tests/test_docs_site.py runs the same
# build in `make test`.
.PHONY: docs
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint typecheck pytest bench-smoke conformance

# Coverage-guided fuzzing (atheris): every target of fuzz/ for FUZZ_SECONDS,
# then a table of executions, exec/s and coverage (cov/ft) per target. Crash
# inputs and logs go to reports/fuzz/. `make fuzz-merge` adds what a run found
# that brings new coverage to the seeds in fuzz/corpus/ (minimised).
.PHONY: fuzz fuzz-merge
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --all --seconds $(FUZZ_SECONDS)

fuzz-merge: $(STAMP)
	for target in session native relay rooms; do $(BIN)/python fuzz/run.py --target $$target --merge; done

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(NODE_DIR)/node_modules bench/node_modules $(BROWSER_DIR)/node_modules \
		.pytest_cache .mypy_cache .ruff_cache reports

# Soak (issue 16): relay churn (one process, then two sharing a redis-server) and
# 10,000 connect/close cycles per client driver; before/after table, reports/soak.md.
# Parameters: make soak SOAK_ARGS="--seconds 300 --cycles 20000" (python bench/soak.py -h).
.PHONY: soak
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
