# uscmail: `make run` starts everything on a laptop; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint format bench-signup bench-campaign clean

$(RUN_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/flask --app uscmail db upgrade
	$(BIN)/flask --app uscmail seed
	PORT=$(PORT) $(BIN)/python -m uscmail.devserver

test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-signup: $(DEV_STAMP)
	$(BIN)/python bench/signup.py

bench-campaign: $(DEV_STAMP)
	$(BIN)/python bench/campaign.py

clean:
	rm -rf $(VENV) instance/*.sqlite instance/devmail instance/celerybeat-schedule*
