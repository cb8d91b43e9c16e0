# The README's two commands: `make demo` and `make test`. Everything else is a helper.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-hosts lint docs bench system-deps services clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/copilot demo

# Debian packages the suite needs: Chromium for the web pages' browser tests (Playwright
# drives /usr/bin/chromium; it never downloads a browser) and libfaketime for the clock-skew
# tests (a worker process whose clock is minutes off). sudo only when not root.
system-deps:
	@{ test -x /usr/bin/chromium && test -x /usr/bin/faketime; } || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium faketime || { \
			$$SUDO apt-get update && \
			$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium faketime; }; } \
		|| [ "$$CI" != true ] || { echo "chromium and faketime are required under CI=true" >&2; exit 1; }

# The tests use real PostgreSQL (and, later, Redis) on loopback. Machines of this kind start
# them at boot; restart one that stopped. Under CI=true a service still missing fails the run.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
		command -v pg_ctlcluster >/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; } || true
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
		command -v redis-server >/dev/null && \
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
			--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log; } || true

lint: $(STAMP)
	$(BIN)/ruff check audit approvals copilot workflows tests bench docs
	$(BIN)/mypy
	$(BIN)/lint-imports

test: system-deps services $(STAMP) lint
	$(BIN)/python -m pytest

# The `hosts` tests: a deployment across network namespaces (tests/deploy/) and the Celery
# tests' RabbitMQ copies. Root, iproute2,
# redis-server, rabbitmq-server, PostgreSQL's initdb; about 10 minutes. CI runs it after
# `make test`.
test-hosts: system-deps services $(STAMP)
	$(BIN)/python -m pytest -m hosts

# The documentation site (MkDocs + Material) into site/; --strict fails on any broken link,
# anchor, include or nav entry. `make test` builds it too (tests/test_docs_site.py).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@for f in bench/[!_]*.py; do n=$$(basename $$f .py); echo "== bench.$$n"; \
		$(BIN)/python -m bench.$$n $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) .copilot .pytest_cache .mypy_cache .ruff_cache site
