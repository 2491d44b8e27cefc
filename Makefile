# make demo / make test work on a fresh clone on a new machine: they create
# .venv from the lock (requirements/dev.lock: every package, exact versions,
# hashes), and install the Debian tools the interop tests need when they are
# missing. pyproject.toml keeps ranges for `pip install tlsecho`; the lock is
# what make and CI install, so a new upstream release changes nothing here
# until `make lock` is run on purpose.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# uv installs from the locks (fast, and it checks every hash); it is itself
# installed by pip from requirements/uv.lock with --require-hashes.
UV_VENV := .venv-uv
UV      := $(UV_VENV)/bin/uv
LOCKS   := requirements/dev.lock requirements/scan.lock requirements/uv.lock
DEBS   := openssl socat ncat nodejs haproxy tshark curl chromium libnss3-tools gnutls-bin

.PHONY: demo test test-fast lint unit integration hostile tools venv clean scan scan-tools soak bench bench-tools \
	lock test-deps

demo: $(STAMP)
	$(BIN)/tlsecho demo

# Fast and deterministic first: lint, then the pure objects, then real
# processes over real TLS (integration, hostile), on each engine. Branch coverage over both
# runs and every tlsecho process they start (pyproject's [tool.coverage]).
test: lint tools $(STAMP)
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(XDIST) tests/unit
	$(BIN)/coverage run -m pytest $(XDIST) $(DURATIONS) tests/integration tests/hostile
	# Again on the memory-BIO engine: every module that serves over the
	# engine (left out: the load generator's, probe's, Locust's and the
	# pytest plugin's own tests, which test clients, and the CLI's
	# start-up checks; CI stays under 20 minutes).
	TLSECHO_ENGINE=membio $(BIN)/coverage run -m pytest $(XDIST) $(DURATIONS) \
		tests/integration tests/hostile \
		$(foreach m,$(ENGINE_NEUTRAL),--deselect tests/integration/$(m).py)
	@$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=$(COV_FAIL_UNDER)

# Two pytest workers (pytest-xdist), a module each at a time so that a
# module's servers stay in one process: most of a test's time is spent
# waiting on the processes it talks to. XDIST= runs in one process.
XDIST ?= -n 2 --dist loadfile
# The slowest tests of each pass, in the log: what to mark slow next.
DURATIONS ?= --durations=15

# Everything but the tests marked slow, on the default engine, without
# coverage: the loop while changing code (make test before landing).
test-fast: tools $(STAMP)
	$(BIN)/pytest $(XDIST) -m "not slow" tests/unit tests/integration tests/hostile

# Modules whose tests do not depend on the server's engine.
ENGINE_NEUTRAL := test_bench test_probe test_locust test_plugin test_usage_errors test_client_messages test_plugin_errors test_fail_closed test_fault_backpressure test_docs_examples

# Branch coverage of src/tlsecho over make test, subprocesses included.
COV_FAIL_UNDER ?= 90

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks examples
	$(BIN)/ruff format --check src tests scripts benchmarks examples
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: tools $(STAMP)
	$(BIN)/pytest tests/integration

hostile: tools $(STAMP)
	$(BIN)/pytest tests/hostile

# Not part of `make test`: tlsecho against its peers, side by side; rewrites
# the generated tables in BENCHMARKS.md (about 25 minutes; the HTTP rows
# against uvicorn and hypercorn about 4 of them). Go's crypto/tls is
# one of the peers when Debian's golang-go can be installed.
BENCH_ARGS ?= --duration 3 --rounds 3 --idle 10000
bench: tools bench-tools $(STAMP)
	$(BIN)/python benchmarks/compare.py $(BENCH_ARGS) --write BENCHMARKS.md
	$(BIN)/python benchmarks/http_compare.py --duration 3 --rounds 3 --write BENCHMARKS.md

bench-tools:
	@command -v go >/dev/null || { \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends golang-go \
		|| echo "golang-go not installed: the Go column is left out"; }

# Not part of `make test`: a long run against one server (RELIABILITY.md).
MINUTES ?= 10
SOAK_MODE ?= nul
soak: $(STAMP)
	$(BIN)/python scripts/soak.py --minutes $(MINUTES) --mode $(SOAK_MODE)

venv: $(STAMP)

$(UV): requirements/uv.lock
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/uv.lock
	touch $@

# sync: exactly the lock (it removes what the lock does not name), then the
# package itself, editable, built by the locked setuptools.
$(STAMP): requirements/dev.lock pyproject.toml $(UV)
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes requirements/dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $@

# Refresh the locks on purpose, in a commit of their own: the newest versions
# pyproject.toml's ranges (and the pins in requirements/*.in) allow today.
LOCK_COMPILE = $(UV) pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --no-emit-index-url
lock: $(UV)
	$(LOCK_COMPILE) pyproject.toml requirements/build.in --extra test --extra bench \
		-o requirements/dev.lock
	$(LOCK_COMPILE) requirements/scan.in -o requirements/scan.lock
	$(LOCK_COMPILE) requirements/uv.in -o requirements/uv.lock

# Not part of `make test` (a new upstream release must not block a landing):
# the unit suite and a fast integration subset against the newest versions
# pyproject.toml's ranges allow and against the lowest direct versions.
test-deps: tools $(UV)
	$(PYTHON) scripts/test_deps.py --uv $(UV) --python $(PYTHON)

# Install only what is missing; apt-get needs root (CI and these machines are).
tools:
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v socat   >/dev/null || missing="$$missing socat"; \
	command -v ncat    >/dev/null || missing="$$missing ncat"; \
	command -v node    >/dev/null || missing="$$missing nodejs"; \
	command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	command -v tshark  >/dev/null || missing="$$missing tshark"; \
	command -v curl    >/dev/null || missing="$$missing curl"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v certutil >/dev/null || missing="$$missing libnss3-tools"; \
	command -v gnutls-cli >/dev/null || missing="$$missing gnutls-bin"; \
	command -v jq      >/dev/null || missing="$$missing jq"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# TLS scanners: sslyze in its own venv (it pins its own dependencies) and
# Debian's testssl.sh.
SCAN_VENV := .venv-scan
scan-tools: $(SCAN_VENV)/.installed
	@command -v testssl >/dev/null || { \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends testssl.sh; }

$(SCAN_VENV)/.installed: requirements/scan.lock $(UV)
	[ -x $(SCAN_VENV)/bin/python ] || $(PYTHON) -m venv $(SCAN_VENV)
	$(UV) pip sync --quiet --python $(SCAN_VENV)/bin/python --require-hashes requirements/scan.lock
	touch $@

scan: scan-tools $(STAMP)
	$(BIN)/python scripts/scan.py

clean:
	rm -rf $(VENV) $(SCAN_VENV) $(UV_VENV) .venv-deps-* build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
