# tradehost: `make run` and `make test` are the two commands of the README; each creates .venv
# when it is missing and installs the project into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONF ?= conf/default.toml
STRICT := actors/messages.py actors/transport.py actors/errors.py actors/broker supervisor

.PHONY: run test test-unit install format lint typecheck bench check clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat editable mode: a plain path entry, no import hook (it would slow every start-up).
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tradehost run -c $(CONF)

test: $(STAMP)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest -m unit

format: $(STAMP)
	$(VENV)/bin/ruff format actors supervisor tests
	$(VENV)/bin/ruff check --fix actors supervisor tests

lint: $(STAMP)
	$(VENV)/bin/ruff check actors supervisor tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy actors supervisor
	$(VENV)/bin/mypy --strict --follow-imports=silent $(STRICT)

bench: $(STAMP)
	$(PY) -m tests.bench.bench_tree
	$(PY) -m tests.bench.bench_broker

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
