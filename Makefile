# The README's two commands: `make demo` and `make test`. Everything else is a helper.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/copilot demo

# Debian packages the suite needs (none beyond the interpreter yet; browser tests will add chromium).
system-deps:
	@true

lint: $(STAMP)
	$(BIN)/ruff check audit approvals copilot workflows tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: system-deps $(STAMP) lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) .copilot .pytest_cache .mypy_cache .ruff_cache
