# maskworld quick start: `make demo` (play a world) and `make test` (the test suite).
# Both create .venv if it is missing. On a machine without a GPU we install the CPU build of
# PyTorch first (torch==2.13.0) so that pip never pulls a multi-GB CUDA build; the package itself
# asks only for torch>=2.4, so users elsewhere keep their own build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.maskworld-installed
TEST_STAMP := $(VENV)/.maskworld-test-installed

.PHONY: demo demo-train test lint install chromium clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || \
	  (command -v nvidia-smi >/dev/null 2>&1 && $(PIP) install "torch>=2.4") || \
	  $(PIP) install "torch==2.13.0" || $(PIP) install "torch>=2.4"
	$(PIP) install -q -e ".[procgen]"
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PIP) install -q -e ".[test,procgen]"
	@touch $(TEST_STAMP)

install: $(STAMP)

# Debian's chromium for the end-to-end browser test, where the package manager allows it (root + apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium not installed; the browser test will be skipped"

test: $(TEST_STAMP) chromium
	$(PY) -m pytest

# Import contracts (.importlinter: layers, no cycles) and ruff's default rules (ruff.toml); ruff is pinned to one
# minor version in the test extra because its default rule set changes between minor versions.
lint: $(TEST_STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check maskworld tests scripts

# The fast tier: everything but the tests marked @pytest.mark.slow (under a minute on 2 CPU cores).
.PHONY: test-fast
test-fast: $(TEST_STAMP)
	$(PY) -m pytest -m "not slow"

# Play the shipped world in the browser (prints the URL).
demo: $(STAMP)
	$(VENV)/bin/maskworld demo $(if $(WORLD),--world $(WORLD))

# The whole pipeline on a laptop CPU: collect, train a tiny world, write a rollout video.
demo-train: $(STAMP)
	$(VENV)/bin/maskworld demo --train

clean:
	rm -rf $(VENV) demo_out .pytest_cache
