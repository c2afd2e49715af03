# Everything runs from a local virtualenv made from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REDIS_STAMP := $(VENV)/.redis-server

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml setup.py watcher/_scan.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,apprise,datasette,scale]'
	touch $(STAMP)

# The scaled-mode tests start a real redis-server on a loopback port: Debian's package.
$(REDIS_STAMP): $(STAMP)
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	touch $(REDIS_STAMP)

demo: $(STAMP)
	$(BIN)/watcher --config watcher.yaml poll --all

test: $(STAMP) $(REDIS_STAMP)
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check watcher tests benchmarks
	$(BIN)/ruff format --check watcher tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data/watcher.db* data/outbox
