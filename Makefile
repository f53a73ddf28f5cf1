# uscmail: `make run` starts everything on a laptop; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# Compiled catalogues (not committed): made from each language's messages.po whenever it changes.
MO_FILES := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))

.PHONY: run test fuzz lint format translations backup restore bench-signup bench-campaign chaos load clean

$(RUN_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(RUN_STAMP)
	$(BIN)/pybabel compile --statistics -l $* -i $< -o $@

# Extract every translatable text into translations/messages.pot, merge it into each language's messages.po (new
# texts arrive untranslated: tests/test_languages.py fails until they are translated), then compile.
translations: $(RUN_STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output --width 120 \
		--project uscmail --copyright-holder "Uyghur Solidarity Campaign UK" -o translations/messages.pot .
	$(BIN)/pybabel update --width 120 -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile --statistics -d translations

run: $(RUN_STAMP) $(MO_FILES)
	$(BIN)/flask --app uscmail db upgrade
	$(BIN)/flask --app uscmail seed
	PORT=$(PORT) $(BIN)/python -m uscmail.devserver

# A backup of the database (DATABASE_URL) and the media files into a new private directory under BACKUP_DIR
# (instance/backups by default); it holds the list: copy it somewhere safe, encrypted.
backup: $(RUN_STAMP)
	$(BIN)/flask --app uscmail backup create

# make restore BACKUP=instance/backups/uscmail-... INTO=<new database name or URL> [MEDIA_DIR=...] [FORCE=1]
restore: $(RUN_STAMP)
	@test -n "$(BACKUP)" -a -n "$(INTO)" || \
		{ echo "usage: make restore BACKUP=<backup directory> INTO=<new database name or URL> [FORCE=1]"; exit 2; }
	$(BIN)/flask --app uscmail backup restore "$(BACKUP)" --database "$(INTO)" $(if $(FORCE),--force)

test: $(DEV_STAMP) $(MO_FILES)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every /api/v1 operation fed generated hostile requests (tests/test_fuzz_api.py), with more examples than `make test`.
FUZZ_EXAMPLES ?= 150
fuzz: $(DEV_STAMP) $(MO_FILES)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz_api.py $(PYTEST_ARGS)

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

# Faults thrown at a deployment on loopback (its own PostgreSQL, Redis and relay) during 20,000-recipient campaigns:
# bench/chaos.py says what is thrown and checked. CHAOS_ARGS="--runs 20 --seed 7" and so on.
chaos: $(DEV_STAMP) $(MO_FILES)
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

# Signups, one-click unsubscribes and preference pages at 200 requests/s for 60 s while a campaign sends.
load: $(DEV_STAMP)
	$(BIN)/python bench/load.py $(LOAD_ARGS)

clean:
	rm -rf $(VENV) instance/*.sqlite instance/devmail instance/celerybeat-schedule* translations/*/LC_MESSAGES/*.mo
