# The one way to set up, run and test calmail: README.md and .ci/run call these targets.
# `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe runs as one shell script, so it can use variables and if/for across lines.
.ONESHELL:
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUFF := $(VENV)/bin/ruff
PORT ?= 8000
PYTEST_ARGS ?=
# An interpreter for a new .venv; by default python3.11, else python3 if it is 3.11.
PYTHON ?=

# Reinstall only when pyproject.toml is newer than the last install.
RUNTIME_STAMP := $(VENV)/.calmail-installed-runtime
DEV_STAMP := $(VENV)/.calmail-installed-dev

PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po)
MO_FILES := $(PO_FILES:.po=.mo)

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test lint graph format check-deploy migrations-check messages vendor bench

help:
	@cat <<'EOF'
	make run               set up .venv, migrate, create the demo admin, start web + worker + beat
	make test              install the dev tools, run the whole test suite (PYTEST_ARGS="..." to narrow)
	make lint              ruff check, ruff format --check, the import layers (import-linter), mypy
	make graph             the module graph in numbers: levels, loops, imports against the layers
	make format            ruff format and ruff check --fix
	make check-deploy      manage.py check --deploy with production settings and throwaway keys
	make migrations-check  fail if a model change lacks its migration
	make messages          update locale/de/LC_MESSAGES/django.po and compile it
	make vendor            refresh static/vendor/ from the npm registry
	make bench             delivery, outbox/log list, report, import, scheduler benchmarks (bench/README.md)
	EOF

$(PY):
	@python=""
	for candidate in $(or $(PYTHON),python3.11 python3); do
	  if command -v "$$candidate" >/dev/null \
	     && "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
	    python="$$candidate"
	    break
	  fi
	done
	if [ -z "$$python" ]; then
	  echo "calmail needs Python 3.11, but neither python3.11 nor a python3 3.11.x was found." >&2
	  echo "Debian/Ubuntu: apt-get install python3.11 python3.11-venv, or pass PYTHON=/path/to/python3.11." >&2
	  exit 1
	fi
	echo "Creating $(VENV) with $$(command -v "$$python") ($$("$$python" --version))"
	if ! "$$python" -m venv $(VENV); then
	  rm -rf $(VENV)
	  echo "Could not create $(VENV). Debian/Ubuntu: apt-get install python3.11-venv" >&2
	  exit 1
	fi

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	@echo "Installing calmail into $(VENV)"
	$(PIP) install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	@echo "Installing calmail with its development tools into $(VENV)"
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

# The .mo files are committed; rebuild one only when its .po is newer and gettext is there.
%.mo: %.po
	@if command -v msgfmt >/dev/null; then
	  echo "Compiling $<"
	  msgfmt --check-format -o $@ $<
	else
	  echo "msgfmt not found (apt-get install gettext): using the committed $@" >&2
	fi

# The embedded run: DEBUG, SQLite and the filesystem broker under var/, keys generated there.
run: export DEBUG := true
run: export PYTHONUNBUFFERED := 1
run: $(RUNTIME_STAMP) $(MO_FILES)
	@$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_demo_admin --url "http://127.0.0.1:$(PORT)/"
	# Demo data arrives with a later section; skip it while the command does not exist.
	if $(PY) manage.py help seed_demo >/dev/null 2>&1; then
	  $(PY) manage.py seed_demo
	fi
	echo
	echo "calmail: open http://127.0.0.1:$(PORT)/ - Ctrl-C stops web, worker and beat."
	echo
	# --env /dev/null: honcho would otherwise load .env, which holds docker compose's settings.
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $(VENV)/bin/honcho \
	  --procfile Procfile.dev --env /dev/null start --port $(PORT)

test: $(DEV_STAMP) $(MO_FILES)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(RUFF) check .
	$(RUFF) format --check .
	# The layers of docs/architecture.md (contracts in pyproject.toml).
	$(VENV)/bin/lint-imports --no-cache
	# The types of services, selectors and the engine (files in pyproject.toml).
	$(VENV)/bin/mypy

graph: $(DEV_STAMP)
	$(PY) scripts/module_graph.py $(GRAPH_ARGS)

format: $(DEV_STAMP)
	$(RUFF) format .
	$(RUFF) check --fix .

# Production settings (DEBUG off, secure defaults) with keys made up for this run only;
# variables that relax those defaults are removed from the environment.
check-deploy: $(RUNTIME_STAMP)
	@secret_key=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')
	fernet_key=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
	echo "manage.py check --deploy --fail-level WARNING (DEBUG=false, ALLOWED_HOSTS=calmail.example.com)"
	env -u SECRET_KEY_FILE -u FERNET_KEYS_FILE -u SECURE_SSL_REDIRECT -u SESSION_COOKIE_SECURE \
	    -u CSRF_COOKIE_SECURE -u SECURE_HSTS_SECONDS \
	  DEBUG=false SECRET_KEY="$$secret_key" FERNET_KEYS="$$fernet_key" \
	  ALLOWED_HOSTS=calmail.example.com CSRF_TRUSTED_ORIGINS=https://calmail.example.com \
	  $(PY) manage.py check --deploy --fail-level WARNING

migrations-check: $(RUNTIME_STAMP)
	DJANGO_SETTINGS_MODULE=calmail.settings_test $(PY) manage.py makemigrations --check --dry-run

messages: $(RUNTIME_STAMP)
	DJANGO_SETTINGS_MODULE=calmail.settings_test $(PY) manage.py makemessages --locale de \
	  --domain django --no-obsolete --no-location --ignore 'var/*' --ignore 'tests/*' --ignore 'static/vendor/*'
	DJANGO_SETTINGS_MODULE=calmail.settings_test $(PY) manage.py compilemessages --locale de \
	  --ignore '.venv' --ignore 'var' --ignore 'node_modules'

vendor:
	sh scripts/vendor_static.sh

# Figures are printed, never asserted. Smaller runs: make bench DELIVERY_ARGS="--count 2000"
# LIST_ARGS="--rows 100000". The outbox list benchmark needs DATABASE_URL=postgres://...
DELIVERY_ARGS ?=
LIST_ARGS ?=
REPORTS_ARGS ?=
SCHEDULER_ARGS ?=
LOG_ARGS ?=
IMPORTS_ARGS ?=
bench: $(DEV_STAMP)
	$(PY) bench/delivery.py $(DELIVERY_ARGS)
	$(PY) bench/reports.py $(REPORTS_ARGS)
	$(PY) bench/imports.py $(IMPORTS_ARGS)
	if [[ "$${DATABASE_URL:-}" == postgres* ]]; then
	  $(PY) bench/outbox_list.py $(LIST_ARGS)
	  $(PY) bench/scheduler.py $(SCHEDULER_ARGS)
	  $(PY) bench/log_list.py $(LOG_ARGS)
	else
	  echo "bench/outbox_list.py, scheduler.py, log_list.py skipped: they need DATABASE_URL=postgres://..." >&2
	fi
