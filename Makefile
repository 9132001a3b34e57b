# make run  : install into .venv, build the web client, serve on http://127.0.0.1:8000 (SQLite in ./data)
# make test : install, build the client, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test client lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

client/dist/index.html: $(shell find client/src client/index.html client/package.json client/package-lock.json -type f 2>/dev/null)
	@if [ -f client/package.json ]; then cd client && npm ci --no-audit --no-fund && npm run build; fi

client: client/dist/index.html

run: $(STAMP) client
	COCANVAS_DATA_DIR=$${COCANVAS_DATA_DIR:-./data} $(BIN)/cocanvas serve --host $${COCANVAS_HOST:-127.0.0.1} --port $${COCANVAS_PORT:-8000}

# The browser tests drive Playwright's sync API, which keeps an event loop of its own running:
# they get a pytest process of their own so the asyncio tests never share a process with it.
test: $(STAMP) client
	$(BIN)/python -m pytest -p no:cacheprovider --ignore=tests/e2e $(PYTEST_ARGS)
	$(BIN)/python -m pytest -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check server tests
	$(BIN)/ruff check server tests
	$(BIN)/mypy server

clean:
	rm -rf $(VENV) client/dist client/node_modules
