# The README's two commands are `make run` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/vallum serve

test: $(STAMP)
	bash scripts/install-sandbox.sh
	$(PY) -m pytest -n 2 -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) -m bench.run --compute

lint: $(STAMP)
	$(VENV)/bin/ruff check vallum tests bench

clean:
	rm -rf $(VENV) vallum-data
