# tradehost: `make run` and `make test` are the two commands of the README; each creates .venv
# when it is missing and installs into it what it needs first: `run` the project and its
# dependencies, `test` (and the other developer targets) the test extra as well.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
CONF ?= conf/default.toml
STRICT := actors/runtime/messages actors/runtime/transport.py actors/core/errors.py actors/broker supervisor

# Editable install (setuptools' default mode): source edits and new modules are live without a
# reinstall. setup.cfg's `package_dir = =.` makes setuptools put the repository root on sys.path
# with a plain .pth line instead of an import hook that costs every interpreter start ~10 ms
# (issue 7 item 11). setuptools does not promise which technique it picks, so say so if a
# release ever starts a hook at start-up again.
NO_HOOK_CHECK = $(PY) -c "import sys; sys.exit(any(m.startswith('__editable__') for m in sys.modules))" \
	|| echo "warning: setuptools installed tradehost with an import hook; start-up is slower (see Makefile)"

.PHONY: run demo model test test-unit install install-test format lint typecheck bench bench-quick soak check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@$(NO_HOOK_CHECK)
	touch $@

# The test extra includes everything `run` needs, so it satisfies the run stamp too; `sweep`'s
# extra (Dask, pyarrow) comes along for tests/integration/test_sweep.py.
$(TEST_STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,sweep]'
	@$(NO_HOOK_CHECK)
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

# The model `make run` uses is built here, by `tradehost train` from the embedded emulator's
# history: never a binary of unknown origin. Delete models/default to build it again.
DEFAULT_MODEL := models/default/model.json
# A weekday on the emulator's clock: `make demo` shows bars and signals whatever day it is.
DEMO_START ?= 2024-03-06T14:00:00Z
DEMO_SPEED ?= 120

$(DEFAULT_MODEL): | $(RUN_STAMP)
	$(VENV)/bin/tradehost train -c $(CONF) --out models/default --seed 7

model: $(DEFAULT_MODEL)

run: $(RUN_STAMP) $(DEFAULT_MODEL)
	$(VENV)/bin/tradehost run -c $(CONF)

# The host on an accelerated emulator market (an M15 bar every few seconds): signals within a minute.
demo: $(RUN_STAMP) $(DEFAULT_MODEL)
	$(VENV)/bin/tradehost run -c $(CONF) --set 'broker.emulator.start="$(DEMO_START)"' \
		--set broker.emulator.speed=$(DEMO_SPEED) --set host.run_dir='"var/demo"'

# The suite mostly waits (hosts starting, market time passing, deadlines running out), so it runs
# on more pytest-xdist workers than the machine has cores (its processes use ~200 s of CPU in a
# ~4-minute run on 2 cores). The workers take the tests two at a time (--maxschedchunk 2), the
# longest first (tests/conftest.py orders them), so the long ones spread over every worker.
# (xdist_group and --dist loadgroup do not group under pytest 9: xdist 3.8 renames node ids the
# old way.) `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 6

test: $(TEST_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --maxschedchunk 2

test-unit: $(TEST_STAMP)
	$(PY) -m pytest -m unit

format: $(TEST_STAMP)
	$(VENV)/bin/ruff format actors supervisor tests
	$(VENV)/bin/ruff check --fix actors supervisor tests

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check actors supervisor tests

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy actors supervisor
	$(VENV)/bin/mypy --strict --follow-imports=silent $(STRICT)

# Each prints its figures (and a baseline measured in the same run where there is one); none asserts.
# The watchdog's cost run alone takes 10 minutes: `make bench-quick` is a smoke run of all seven.
bench: $(TEST_STAMP)
	$(PY) -m tests.bench.bench_tree
	$(PY) -m tests.bench.bench_broker
	$(PY) -m tests.bench.bench_market
	$(PY) -m tests.bench.bench_orders
	$(PY) -m tests.bench.bench_journal
	$(PY) -m tests.bench.bench_backtest
	$(PY) -m tests.bench.bench_sweep
	$(PY) -m tests.bench.bench_watchdog

bench-quick: $(TEST_STAMP)
	$(PY) -m tests.bench.bench_tree --quick
	$(PY) -m tests.bench.bench_broker
	$(PY) -m tests.bench.bench_market --quick
	$(PY) -m tests.bench.bench_orders --quick
	$(PY) -m tests.bench.bench_journal --quick
	$(PY) -m tests.bench.bench_backtest --quick
	$(PY) -m tests.bench.bench_sweep --quick
	$(PY) -m tests.bench.bench_watchdog --quick

# The soak (issue 19): a benchmark, not a test and not part of `make test` or `make bench`. The live
# tree on the embedded emulator at 3600x (a market day every 24 s) for SOAK_MINUTES wall minutes,
# a fault every minute, then the fault matrix's invariants and a table of memory slopes, file
# descriptors, threads, journal growth, orders and restarts (stdout and .cache/soak.md).
SOAK_MINUTES ?= 30
SOAK_SPEED ?= 3600

soak: $(TEST_STAMP)
	$(PY) -m tests.bench.bench_soak --minutes $(SOAK_MINUTES) --speed $(SOAK_SPEED)

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache models
