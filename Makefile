# Every target bootstraps .venv with the first Python 3.11/3.12 found.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,12))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required (bytewax==0.21.1)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cascadewatch demo

# The deployment tests run the real promtool and Prometheus server (Debian's prometheus
# package); installed here when missing and possible, else those tests skip with the reason.
test: $(STAMP)
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
		|| echo "promtool/prometheus absent: tests/test_deploy.py skips the Prometheus checks"
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pipelines.bench
	$(BIN)/python -m pipelines.live_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
