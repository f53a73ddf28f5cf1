# uscmail: `make run` starts everything on a laptop; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench-signup clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flask --app uscmail db upgrade
	$(BIN)/flask --app uscmail seed
	PORT=$(PORT) $(BIN)/python -m uscmail.devserver

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-signup: $(STAMP)
	$(BIN)/python bench/signup.py

clean:
	rm -rf $(VENV) instance/*.sqlite instance/devmail instance/celerybeat-schedule*
