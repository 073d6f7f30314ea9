# Zhuandi: `make run` starts a demo server, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# hls.js for the replay page, pinned in package.json + package-lock.json
HLS_JS := web/static/vendor/hls.min.js

.PHONY: run test lint typecheck bench clean vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(HLS_JS): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(@D)
	cp node_modules/hls.js/dist/hls.min.js $@

vendor: $(HLS_JS)

# `make run` works without npm too: replays then fall back to the MP4.
run: $(STAMP)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory vendor; \
	else echo "npm not found: replays will play the MP4 instead of HLS"; fi
	$(BIN)/zhuandi serve --demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

test: $(TEST_STAMP) $(HLS_JS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(TEST_STAMP)
	$(BIN)/python -m bench.fanout

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info node_modules $(HLS_JS)
