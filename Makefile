# Two commands matter: `make run` and `make test`. Each builds .venv from the lock files first:
# `make run` only what the app needs at run time, `make test` the development tools on top.
# The project runs from this folder (python -m bot), so it needs no install of its own.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --quiet --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.PHONY: run test lint bench lock clean rotate-keys generate-key

$(RUNTIME_STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24"
	$(PIP) install -r requirements.lock
	$(PY) scripts/drop_stray_tests.py
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.lock
	$(PIP) install -r requirements-dev.lock
	touch $(DEV_STAMP)

run: $(RUNTIME_STAMP)
	$(PY) -m bot

# Two workers (pytest-xdist), a test file each at a time: most tests wait on sockets and
# timers more than they compute. `.venv/bin/python -m pytest` alone runs them one by one.
test: $(DEV_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(DEV_STAMP)
	$(PY) -m bench

rotate-keys: $(RUNTIME_STAMP)
	$(PY) -m store rotate-keys

generate-key: $(RUNTIME_STAMP)
	@$(PY) -m store generate-key

# Refresh the pins: resolve pyproject's ranges in a scratch venv and write the exact versions
# of both lock files, keeping their header comments.
lock:
	$(PYTHON) scripts/lock.py

clean:
	rm -rf $(VENV)
