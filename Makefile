# Two entry points for people: `make app` and `make test`. Everything else is a step of those.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB := data/demo.db

.PHONY: app test lint typecheck demo venv

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(BIN)/.installed

demo: venv
	LOOKALIKE_DB=$(DEMO_DB) $(BIN)/lookalike demo

app: demo
	$(BIN)/lookalike --db $(DEMO_DB) app

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over core/ (settings in pyproject.toml): a type error fails `make test` before any test runs.
typecheck: venv
	$(BIN)/mypy

# Two pytest-xdist workers, one test file each at a time (a file's module fixtures stay one);
# `make test TEST_WORKERS=0` runs everything in one process.
TEST_WORKERS ?= 2

test: lint typecheck
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
