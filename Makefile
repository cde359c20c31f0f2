# Two commands matter: `make run` and `make test`. Each builds .venv from the lock files first.
# The project runs from this folder (python -m bot), so it needs no install of its own.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench lock clean rotate-keys

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) -m tests.bench

rotate-keys: $(STAMP)
	$(PY) -m store rotate-keys

# Refresh the pins: resolve pyproject's ranges in a scratch venv and write the exact versions.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e . && .lockvenv/bin/pip freeze --exclude-editable > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV)
