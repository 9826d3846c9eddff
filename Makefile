# Every target bootstraps .venv with the first Python 3.11/3.12 found.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,12))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint deps bench quality clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required (bytewax==0.21.1)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cascadewatch demo

# Tests that need a system program (promtool and Prometheus) skip with the reason when it is
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

# System packages some tests use (Debian, as root): Prometheus and promtool for the deploy files.
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus

bench: $(STAMP)
	$(BIN)/python -m cascadewatch.pipelines.bench.replay
	$(BIN)/python -m cascadewatch.pipelines.bench.live

# Detection quality (README, "Detection quality"): simulate the tuning set (seeds 1-5 of every
# scenario, calm days 1 and 2) and the held-out set (seeds 101-105, calm day 101), train the
# classifier on the tuning set only, evaluate on the held-out set. Recordings are kept in
# $(QUALITY) and not simulated again; about 15 minutes from scratch.
QUALITY := .quality
CW = $(abspath $(BIN))/cascadewatch
SCENARIOS := long-squeeze short-squeeze liquidity-drain stop-run multi-venue
TRAIN := $(foreach s,1 2 3 4 5,$(foreach n,$(SCENARIOS),$(n)-$(s))) calm-1 calm-2
TEST := $(foreach s,101 102 103 104 105,$(foreach n,$(SCENARIOS),$(n)-$(s)))
quality: $(STAMP)
	@mkdir -p $(QUALITY)
	@for run in $(TRAIN) $(TEST) calm-101; do \
		test -f $(QUALITY)/$$run.truth.jsonl || $(CW) simulate --scenario $${run%-*} --seed $${run##*-} \
			--out $(QUALITY)/$$run.rec.zst --truth $(QUALITY)/$$run.truth.jsonl --quiet || exit 1; done
	cd $(QUALITY) && $(CW) train $(TRAIN:%=%.rec.zst) --truth $(TRAIN:%=%.truth.jsonl) --out model.pkl
	cd $(QUALITY) && $(CW) evaluate $(TEST:%=%.rec.zst) --truth $(TEST:%=%.truth.jsonl) \
		--config ../docs/detection-quality.toml
	cd $(QUALITY) && $(CW) evaluate calm-101.rec.zst --truth calm-101.truth.jsonl \
		--config ../docs/detection-quality.toml

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
