# make run  : install into .venv, build the web client, serve on http://127.0.0.1:8000 (SQLite in ./data)
# make test : install, build the client, run every test
# make lint : ruff (format and lint) and mypy on the Python side, tsc on the client
# make lock : re-resolve requirements.lock after a change to the dependencies in pyproject.toml
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
# npm ci writes this file last: its age says when the client's dependencies were installed.
CLIENT_DEPS := client/node_modules/.package-lock.json

.PHONY: run test client lint lock bench clean

# Exactly the versions (and hashes) in the lock, then the project itself without its dependencies.
# The lock is resolved for CPython 3.11 on x86-64 Linux; elsewhere pyproject.toml's ranges apply.
# setup.py compiles server/yupdate.py and server/vouch.py (mypyc): an edit to either reinstalls,
# so `make test` tests the compiled code that ships, not the pure fallback (server/native.py).
$(STAMP): pyproject.toml setup.py $(LOCK) server/yupdate.py server/vouch.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	if $(BIN)/python -c 'import platform as p, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and p.system() == "Linux" and p.machine() == "x86_64"))'; then \
	  $(BIN)/pip install -q -r $(LOCK) && $(BIN)/pip install -q --no-deps -e .; \
	else \
	  echo "$(LOCK) is for CPython 3.11 on x86-64 Linux: installing from pyproject.toml's ranges"; \
	  $(BIN)/pip install -q -e '.[test]'; \
	fi
	touch $(STAMP)

# The lock is for CPython 3.11 on x86-64 Linux (CI's machine and the Docker image), runtime and
# test extras. Pins already in it are kept unless pyproject.toml excludes them; to move every
# pin to the newest allowed release: make lock LOCK_ARGS=--upgrade
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --generate-hashes \
	  --custom-compile-command "make lock" $(LOCK_ARGS) -o $(LOCK)

# --engine-strict: an unsupported Node.js (see "engines" in client/package.json) stops here with
# the versions it needs, not later inside the Vite build.
$(CLIENT_DEPS): client/package.json client/package-lock.json
	cd client && npm ci --no-audit --no-fund --engine-strict
	touch $@

client/dist/index.html: $(CLIENT_DEPS) $(shell find client/src client/index.html client/vite.config.ts client/tsconfig.json -type f 2>/dev/null)
	cd client && npm run build

client: client/dist/index.html

run: $(STAMP) client
	COCANVAS_DATA_DIR=$${COCANVAS_DATA_DIR:-./data} $(BIN)/cocanvas serve --host $${COCANVAS_HOST:-127.0.0.1} --port $${COCANVAS_PORT:-8000}

# The browser tests drive Playwright's sync API, which keeps an event loop of its own running:
# they get a pytest process of their own so the asyncio tests never share a process with it.
test: $(STAMP) client
	$(BIN)/python -m pytest -p no:cacheprovider --ignore=tests/e2e $(PYTEST_ARGS)
	$(BIN)/python -m pytest -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

lint: $(STAMP) $(CLIENT_DEPS)
	$(BIN)/ruff format --check server tests
	$(BIN)/ruff check server tests
	$(BIN)/mypy server
	cd client && npm run typecheck

clean:
	rm -rf $(VENV) client/dist client/node_modules
