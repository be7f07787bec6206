# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip

.PHONY: install run test lint typecheck test-fast bench clean proto docs browser ts-client

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch is pinned through constraints.txt: 2.13.0 CPU build (see README, Installation).
	$(PIP) install --quiet -c constraints.txt -e ".[dev,all]"
	touch $(STAMP)

install: $(STAMP) browser ts-client

# The TypeScript client (clients/typescript; Node 20): `npm ci` where node and npm exist, else skipped with a note.
TS := clients/typescript
ts-client:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(TS)/node_modules/.package-lock.json; \
	else echo "note: node/npm not found; the TypeScript client (clients/typescript) and its tests are skipped"; fi

$(TS)/node_modules/.package-lock.json: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error

# The status page is tested in a real headless browser: Debian's chromium, driven by playwright (whose own
# browser download needs the internet). Installed here where apt-get exists and we are root; else skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "note: chromium not installed; the status page browser test will be skipped"

run: $(STAMP)
	$(BIN)/fedloom run

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/mypy

test: lint browser ts-client
	@if command -v node >/dev/null 2>&1 && [ -d $(TS)/node_modules ]; then cd $(TS) && npm test --silent; fi
	$(BIN)/python -m pytest tests -q -n 2

test-fast: $(STAMP) browser
	$(BIN)/python -m pytest tests -q -n 2 -m "not slow"

# API reference from the docstrings (pdoc, dev extra) into docs/api; fails on any unresolved reference.
docs: $(STAMP)
	$(BIN)/python docs/build_api.py docs/api

bench: $(STAMP)
	$(BIN)/python -m benchmarks.simulation

# Regenerate the committed gRPC/protobuf code of fedloom.net (needs the dev extra: grpcio-tools).
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src \
		src/fedloom/net/proto/fedloom.proto

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
