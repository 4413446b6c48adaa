# The README's two commands are `make run` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HASH := $(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
RUN_STAMP := $(VENV)/.run-$(HASH)
DEV_STAMP := $(VENV)/.dev-$(HASH)

.PHONY: run test test-fast bench bench-operator lint lock clean

# Serving needs only the package and its dependencies.
$(RUN_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e .
	rm -f $(VENV)/.run-* && touch $(RUN_STAMP)

# Tests and benchmarks add their clients and peers.
$(DEV_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -c requirements.lock -e '.[test,bench,postgres]'
	rm -f $(VENV)/.dev-* && touch $(DEV_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/vallum serve

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check vallum tests bench
	$(VENV)/bin/mypy
	bash scripts/install-sandbox.sh
	bash scripts/install-postgres.sh
	bash scripts/install-slapd.sh
	bash scripts/install-chromium.sh
	$(PY) -m pytest -n 2 -q -p no:cacheprovider tests

# The inner loop: pure logic and the in-process harness, no server processes.
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -n 2 -q -p no:cacheprovider tests/unit

# The full run writes bench/results/latest.json (committed); docs/benchmarks.md shows it
# through `python -m bench.report bench/results/latest.json`.
bench: $(DEV_STAMP)
	$(PY) -m bench.run --compute --out bench/results/latest.json
	$(PY) -m bench.report bench/results/latest.json

# The operator hook alone: gateway CPU per request with VALLUM_OPERATOR off vs observe.
bench-operator: $(DEV_STAMP)
	$(PY) -m bench.operator_hook

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check vallum tests bench

# Pin what the dev environment resolved (after changing dependencies in pyproject.toml).
lock: $(DEV_STAMP)
	( echo "# Exact versions for reproducible installs: the Makefile installs with -c requirements.lock."; \
	  echo "# Regenerate after changing dependencies in pyproject.toml: make lock"; \
	  $(PY) -m pip freeze --exclude-editable ) > requirements.lock

clean:
	rm -rf $(VENV) vallum-data
