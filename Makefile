# Quick start: `make demo` and `make test`; each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-serve fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

PLUGINS := $(wildcard plugins/*/pyproject.toml)

$(VENV)/.installed-test: pyproject.toml $(PLUGINS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' $(patsubst %/pyproject.toml,-e %,$(PLUGINS))
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/progressor demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check progressor tests bench plugins
	$(BIN)/ruff format --check progressor tests bench plugins
	$(BIN)/mypy

# The suite: progressor's own tests, then each example plugin's (tests/ and plugins/*/tests).
test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/step.py

# progressor serve --workers 2 under load, driven by wrk (installed first when missing: root
# and Debian's apt-get); BENCH_ARGS, e.g. "--seconds 10" or "--client python".
bench-serve: $(VENV)/.installed-test
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python bench/serve.py $(BENCH_ARGS)

# 100,000 mutated inputs per road (programs, logs, the store's import) on every core; findings
# are saved under out/fuzz/ (replay: .venv/bin/python -m bench.fuzz --replay out/fuzz/*.json).
fuzz: $(VENV)/.installed-test
	$(BIN)/python -m bench.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
