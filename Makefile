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
# checkov (the security linter of deploy/) lives in a venv of its own: its pins clash with the
# main tree's (boto3, dpath); installed by uv from its own lock, created by `make test` if missing.
TOOLS       ?= .venv-tools
TOOLS_LOCK  := requirements/tools-lock.txt
TOOLS_STAMP := $(TOOLS)/.installed
# torch's CPU build: a local wheel folder when the machine has one (pip's config names it too).
WHEELS := $(wildcard /opt/wheels)

.PHONY: demo test lint lint-imports lock lock-tools tools bench docs docs-cli clean help

help:
	@echo "make demo         - create $(VENV), install the lock and gitreg, run 'gitreg demo'"
	@echo "make test         - the same venv; lint (ruff, vulture) and the whole test suite"
	@echo "make lint-imports - check the layers contract (import-linter, [tool.importlinter])"
	@echo "make lock         - re-resolve $(LOCK) from pyproject.toml + constraints.txt (uv)"
	@echo "make tools        - create $(TOOLS) (checkov) from $(TOOLS_LOCK); make test does it too"
	@echo "make lock-tools   - re-resolve $(TOOLS_LOCK) from requirements/tools.in (uv)"
	@echo "make bench        - run the benchmarks (JSON + tables; slow)"
	@echo "make docs         - build the documentation site into site/ (mkdocs build --strict, offline)"
	@echo "make docs-cli     - regenerate docs/cli.md from the CLI itself (tests/cli/test_docs.py checks it)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gitreg needs Python 3.11+: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/python -m pip install -q -r $(LOCK)
	@# the distribution was called gitreg before it became gitreg-ml: drop the old name's record
	$(BIN)/python -m pip uninstall -q -y gitreg 2>/dev/null || true
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

$(TOOLS_STAMP): $(TOOLS_LOCK) | $(STAMP)
	rm -rf $(TOOLS)
	$(PYTHON) -m venv --without-pip $(TOOLS)
	echo '*' > $(TOOLS)/.gitignore
	$(BIN)/uv pip install -q --python $(TOOLS)/bin/python -r $(TOOLS_LOCK)
	@touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/gitreg demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks lint
	$(BIN)/ruff format --check src tests benchmarks lint
	$(BIN)/vulture
	$(BIN)/lint-imports

lint-imports: $(STAMP)
	$(BIN)/lint-imports

test: lint $(TOOLS_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The lock: runtime + dev extras for CPython 3.11 on x86-64 Linux, torch resolved against its
# CPU wheel (no nvidia-*/triton in the tree). uv, not pip-tools: see docs/dependencies.md.
lock: $(BIN)/python
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q "$$(grep -sE '^uv==' $(LOCK) || echo uv)"
	@# uv keeps the lock's pins as preferences: show it the CPU build it pinned, not PyPI's torch
	test ! -f $(LOCK) || sed -i 's/^torch==\([0-9.]*\)$$/torch==\1+cpu/' $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra torch --extra dev -c constraints.txt \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  $(if $(WHEELS),--find-links $(WHEELS)) --custom-compile-command 'make lock' \
	  -q -o $(LOCK)
	sed -i 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' $(LOCK)
	@! grep -nEi '^(nvidia-|triton==|cuda)' $(LOCK) || { echo "$(LOCK) has CUDA packages: resolve against torch's CPU wheel"; exit 1; }

lock-tools: $(STAMP)
	$(BIN)/uv pip compile requirements/tools.in --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock-tools' \
	  -q -o $(TOOLS_LOCK)

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
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .hypothesis site
