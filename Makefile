# gitreg: two commands on a fresh machine (Python 3.11+ and git):
#   make demo   # build a throwaway registry and walk through it
#   make test   # lint + the whole test suite (unit and end-to-end)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean help

help:
	@echo "make demo   - create $(VENV), install gitreg, run 'gitreg demo'"
	@echo "make test   - create $(VENV) with dev extras, run ruff and the whole test suite"
	@echo "make bench  - run the benchmarks (JSON + tables; slow)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gitreg needs Python 3.11+: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -c constraints.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gitreg demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/list_scale.py
	$(BIN)/python benchmarks/bundle_io.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
