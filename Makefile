# wsloop: `make demo` runs the offline demo, `make test` runs every test.
# Both install what they need into .venv (Python) and tests/node (npm).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp

.PHONY: demo test lint typecheck pytest conformance conformance-quick install clean

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e . --group dev
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/python -m wsloop demo

lint: $(STAMP)
	$(BIN)/ruff check src tests compliance examples
	$(BIN)/ruff format --check src tests compliance examples

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

# Every Autobahn client case (about 8 minutes: groups 12 and 13 dominate).
conformance: $(STAMP)
	$(BIN)/python compliance/run.py --driver poll

# The quick day-to-day subset: everything but the compression groups.
conformance-quick: $(STAMP)
	$(BIN)/python compliance/run.py --driver poll --exclude '12.*' '13.*'

test: lint typecheck pytest conformance

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache reports
