# Everything runs inside .venv, built from the pinned requirements.lock.
PY ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test bench lint e2e parity-200 clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

# Headless Chromium for the tests that look at rendered report pages (apt, pinned; or one
# already installed / CHROMIUM_BIN).
browser:
	@bash scripts/install_browser.sh >/dev/null

# The suite on TEST_WORKERS pytest-xdist workers, one test file per worker at a time (a file's
# fixtures - servers, a parity batch - are built once); many tests wait on Freqtrade's clock or a
# subprocess, so 3 workers fit 2 cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

test: setup browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(BIN)/pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/run_all.py

e2e: setup
	$(BIN)/python scripts/e2e_monitoring.py --minutes 5

# The decision-rule property test with 200 random cases instead of make test's 20 (~20 min).
parity-200: setup
	DECISION_PARITY_CASES=200 $(BIN)/python -m pytest tests/strategy/test_decision_parity.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
