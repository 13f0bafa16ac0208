# Two entry points: `make run` (the product, bundled models) and `make test` (every test).
# Both set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/faces-v1
BIND ?= 127.0.0.1:8000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast bench bench-smoke models extension deps python-deps node-deps chromium clean

run: deps extension
	@echo "Extension built in extension/dist/ (load it unpacked from chrome://extensions)."
	$(VENV)/bin/unmask serve --bind $(BIND)

test: deps
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

deps: python-deps node-deps chromium

python-deps: $(VENV)/.installed
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node-deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

chromium:
	@{ command -v chromium && command -v Xvfb && command -v xdotool && command -v unzip && command -v redis-server; } >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium xvfb xdotool unzip redis-server; }

extension: node-deps
	npm run build

# Retrain and reconvert the bundled models from the data folder, with a fixed seed.
# ONLY=tiny retrains just the on-device model (then reconverts it into extension/model).
ONLY ?= tiny,tuned-cnn,pretrained,seed-cnn,ensemble
models: python-deps node-deps
	$(PY) -m training.bundle --data $(DATA) --only $(ONLY) --skip-trained

bench: deps
	$(PY) -m bench.run --out bench/results.json

bench-smoke: deps
	$(PY) -m bench.run --smoke --out .tmp/bench-smoke.json

clean:
	rm -rf $(VENV) node_modules extension/dist .pytest_cache
