# Quick start: `make demo` (the whole DAG on the synthetic world, CPU) and `make test`.
# Each target sets up .venv first; set-up is skipped while requirements are unchanged.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q

# The checks CI runs before the tests: the workflow's lint, the formatter and the linter (pyproject.toml).
lint: setup
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

clean-demo:
	rm -rf demo demo_smoke
