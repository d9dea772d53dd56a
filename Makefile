# gitreg: two commands on a fresh machine (Python 3.11+ and git):
#   make demo   # build a throwaway registry and walk through it
#   make test   # lint + the whole test suite (unit and end-to-end)
# Both install the locked tree (requirements/lock.txt: every package pinned, so the pip that
# Python 3.11 ships installs it without resolving), then gitreg itself without dependencies.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt
# torch's CPU build: a local wheel folder when the machine has one (pip's config names it too).
WHEELS := $(wildcard /opt/wheels)

.PHONY: demo test lint lint-imports lock bench docs docs-cli clean help

help:
	@echo "make demo         - create $(VENV), install the lock and gitreg, run 'gitreg demo'"
	@echo "make test         - the same venv; lint (ruff, vulture) and the whole test suite"
	@echo "make lint-imports - check the layers contract (import-linter, [tool.importlinter])"
	@echo "make lock         - re-resolve $(LOCK) from pyproject.toml + constraints.txt (uv)"
	@echo "make bench        - run the benchmarks (JSON + tables; slow)"
	@echo "make docs         - build the documentation site into site/ (mkdocs build --strict, offline)"
	@echo "make docs-cli     - regenerate docs/cli.md from the CLI itself (tests/cli/test_docs.py checks it)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gitreg needs Python 3.11+: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gitreg demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks lint
	$(BIN)/ruff format --check src tests benchmarks lint
	$(BIN)/vulture
	$(BIN)/lint-imports

lint-imports: $(STAMP)
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The lock: runtime + dev extras for CPython 3.11 on x86-64 Linux, torch resolved against its
# CPU wheel (no nvidia-*/triton in the tree). uv, not pip-tools: see docs/dependencies.md.
lock: $(BIN)/python
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q "$$(grep -sE '^uv==' $(LOCK) || echo uv)"
	@# uv keeps the lock's pins as preferences: show it the CPU build it pinned, not PyPI's torch
	test ! -f $(LOCK) || sed -i 's/^torch==\([0-9.]*\)$$/torch==\1+cpu/' $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra dev -c constraints.txt \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  $(if $(WHEELS),--find-links $(WHEELS)) --custom-compile-command 'make lock' \
	  -q -o $(LOCK)
	sed -i 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' $(LOCK)
	@! grep -nEi '^(nvidia-|triton|cuda)' $(LOCK) || { echo "$(LOCK) has CUDA packages: resolve against torch's CPU wheel"; exit 1; }

bench: $(STAMP)
	$(BIN)/python benchmarks/list_scale.py
	$(BIN)/python benchmarks/bundle_io.py
	$(BIN)/python benchmarks/git_transport.py

# The documentation site (mkdocs.yml, docs/): strict, so a broken link or anchor fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-cli: $(STAMP)
	$(BIN)/python -m gitreg.cli.reference docs/cli.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis site
