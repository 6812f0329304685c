# make bench: the benchmarks on the embedded default (smoke profile); make test: the test suite but
# its heavy tier (tests marked heavy, which make test-heavy runs; .ci/run runs both); make test-fast:
# its unit tier (tests not marked slow); make lint: ruff (format and lint) and mypy;
# make format: ruff's fixes and format applied; make docs: docs/cli.md from --help.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RESULTS ?= results
PYTEST_ARGS ?=
# make test's pytest-xdist workers, one training thread each (OMP_NUM_THREADS=1), so two never fight for a core (a
# third made it slower on 2 cores, 689 s against 631 s: the imports of every Python process keep both busy)
TEST_WORKERS ?= 2

.PHONY: install test test-heavy test-fast lint format bench docs clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -m "not heavy" -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

test-heavy: install
	$(PY) -m pytest tests -m heavy --durations=15 $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

LINTED := harness tests benchmarks conftest.py examples

lint: install
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

bench: install
	mkdir -p $(RESULTS)
	$(PY) -m pytest benchmarks --results-dir $(RESULTS) --benchmark-json=$(RESULTS)/benchmark.json $(PYTEST_ARGS)

docs: install
	$(PY) -m harness.cli.reference docs/cli.md

clean:
	rm -rf $(RESULTS) .pytest_cache .benchmarks wandb lightning_logs
