# Every target bootstraps .venv with the first Python 3.11/3.12 found.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,12))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint deps screenshots bench model quality clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required (bytewax==0.21.1)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cascadewatch demo

# Tests that need a system program (promtool, Prometheus, Alertmanager) skip with the reason when it is
# absent; `make deps` installs them (Debian, as root).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# House rules: ruff (lint and format) and mypy on the installed layout, cascadewatch.* (a tree
# of symlinks in build/typecheck: the three folders are subpackages of cascadewatch).
TYPECHECK := build/typecheck/cascadewatch
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@mkdir -p $(TYPECHECK) && for d in connectors detectors pipelines; do ln -sfn ../../../$$d $(TYPECHECK)/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p cascadewatch

# System packages some tests use (Debian, as root): Prometheus and promtool for the deploy files;
# Alertmanager for the alertmanager destination;
# Chromium for the web page and report tests (Playwright drives this browser, never downloads one).
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager chromium

# The README's screenshots of the web page and the report (docs/img), taken by the browser tests.
screenshots: $(STAMP)
	CASCADEWATCH_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_webpage_browser.py -p no:cacheprovider

# The peer (cryptofeed, the `bench` extra) is installed for the benchmark only, not by the other targets.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m cascadewatch.pipelines.bench.peer
	$(BIN)/python -m cascadewatch.pipelines.bench.replay
	$(BIN)/python -m cascadewatch.pipelines.bench.live
	$(BIN)/python -m cascadewatch.pipelines.bench.alert_latency

# The model shipped in the package (README, "The shipped model"): simulate seeds 1-8 of every
# scenario family and calm days 1-4 (each seed its own market), train the classifier on them,
# write pipelines/data/model/cascade-model.json and manifest.json. Recordings are kept in
# $(CORPUS) and not simulated again. Deterministic: the same code gives the same model bytes.
CORPUS := .corpus
model: $(STAMP)
	$(BIN)/python -m cascadewatch.pipelines.evaluation.default_model --dir $(CORPUS)

# Detection quality (README, "Detection quality"), shipped defaults and no config file: per
# scenario family a model trained as `make model` but without that family, evaluated on all its
# seeds (leave one family out); the shipped model on held-out seeds 101-103 of every family and
# held-out calm days 101-102. Shares $(CORPUS) with `make model`.
quality: $(STAMP)
	$(BIN)/python -m cascadewatch.pipelines.evaluation.quality --dir $(CORPUS) --json $(CORPUS)/quality.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
