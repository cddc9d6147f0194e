# fe2hmm — the README's two commands:
#   make run    set up .venv (if missing), install fe2hmm (+ the dolfinx wheel unless dolfinx is
#               already importable, as in the FEniCS Docker image), run the main demo
#   make test   the same set-up with test extras, then ruff, the whole suite serially, the same
#               suite under `mpiexec -n 2`, the slow validation tests (`-m slow`) and `make docs`
#   make docs   the docs site (Sphinx + MyST, API from the docstrings, demo pages from demos/*.py)
#               into docs/_build/html, warnings (broken internal links included) as errors
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PY := $(VENV)/bin/python
# python3.12 where pyenv/the system has it (dolfinx wheels need >= 3.10; .python-version pins 3.12)
BASE_PY ?= $(shell command -v python3.12 || command -v python3)
MPIEXEC = $(if $(wildcard $(VENV)/bin/mpiexec),$(VENV)/bin/mpiexec,mpiexec)
NPROCS ?= 2

.PHONY: run test test-serial test-mpi test-slow benchmarks lint docs help

help:
	@echo "make run | make test | make test-slow | make benchmarks | make lint | make docs"

$(VENV)/.created:
	if [ ! -x "$(PY)" ]; then
	  if "$(BASE_PY)" -c "import importlib.util as u, sys; sys.exit(u.find_spec('dolfinx') is None)"; then
	    echo "dolfinx found in $(BASE_PY): creating $(VENV) with system site-packages"
	    "$(BASE_PY)" -m venv --system-site-packages "$(VENV)"
	  else
	    "$(BASE_PY)" -m venv "$(VENV)"
	  fi
	fi
	"$(PY)" -m pip install -q --upgrade pip
	touch $@

# install with the given extras; add the dolfinx wheel only when dolfinx is not importable
$(VENV)/.installed-%: pyproject.toml $(VENV)/.created
	extras="$*"
	if ! "$(PY)" -c "import importlib.util as u, sys; sys.exit(u.find_spec('dolfinx') is None)"; then
	  extras="dolfinx,$$extras"
	fi
	"$(PY)" -m pip install -q -e ".[$$extras]"
	touch $@

run: $(VENV)/.installed-demo
	"$(PY)" -m fe2hmm.cli demo composite_conduction

test: lint test-serial test-mpi test-slow docs

test-serial: $(VENV)/.installed-test
	"$(PY)" -m pytest

# the same suite under MPI; tests that spawn their own processes skip themselves there
test-mpi: $(VENV)/.installed-test
	"$(MPIEXEC)" -n $(NPROCS) "$(PY)" -m pytest -p no:cacheprovider -q

test-slow: $(VENV)/.installed-test
	"$(PY)" -m pytest -m slow

benchmarks: $(VENV)/.installed-bench
	"$(PY)" benchmarks/cell_diffusion.py

# -E: a fresh environment every time, so that the warnings of unchanged pages are reported too
DOCS_OUT ?= docs/_build/html
docs: $(VENV)/.installed-docs
	"$(PY)" -m sphinx -E -q -W --keep-going -b html docs "$(DOCS_OUT)"
	echo "docs: $(DOCS_OUT)/index.html"

lint: $(VENV)/.installed-test
	"$(PY)" -m ruff check . && "$(PY)" -m ruff format --check .
