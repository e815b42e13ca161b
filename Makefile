# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install, fetch MNIST + Fashion-MNIST + Animal-MNIST, run the demo
#   make test   create .venv, install, fetch MNIST, run the test suite
#   make docs   install the docs extra, build the documentation site strictly into site/ (make serve-docs: serve it)
#   make lint   install the dev extra, then ruff (lint) and mypy (src/, basic mode) as configured in pyproject.toml
# A torch already present in .venv (for example your CUDA build) is kept; otherwise torch 2.13.0 (CPU) is installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
GFLOWOUT := $(VENV)/bin/gflowout
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
LINT_STAMP := $(VENV)/.installed-lint
DEMO_OUT ?= gflowout-demo
PYTEST_ARGS ?=

.PHONY: install demo test lint data docs serve-docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

data: $(STAMP)
	$(GFLOWOUT) data fetch mnist fashion-mnist animal-mnist

demo: data
	$(GFLOWOUT) demo --out $(DEMO_OUT)

test: $(STAMP)
	$(GFLOWOUT) data fetch mnist
	$(PY) -m pytest $(PYTEST_ARGS)

# mypy checks against the installed torch, Lightning and numpy, so lint installs what the tests install, plus dev
$(LINT_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check src tests benchmarks docs
	$(VENV)/bin/mypy

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(DOCS_STAMP)

# NO_MKDOCS_2_WARNING: mkdocs-material prints a banner about its successor on every build otherwise
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

serve-docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
