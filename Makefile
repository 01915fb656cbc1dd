# usbills: the project's commands. Each works on a bare machine with Python 3.11,
# pip and apt (no Docker needed except for the deployment's docker-test).
#
#   make run        virtualenv + requirements + migrate SQLite + serve on 127.0.0.1:8000
#   make superuser  create an admin account
#   make test       install what the tests need (Python packages, Debian's chromium) and run pytest
#   make test-fast  the quick tier: no browser, no real stack, no training (no TensorFlow needed)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DATA ?= ../shared/datasets/usd-bills/train
PYTEST_ARGS ?=
# As root, or through sudo without a password prompt (CI has no one to type it).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.DEFAULT_GOAL := help
.PHONY: help install install-dev install-train run superuser migrate test test-fast chromium node-deps live-deps lint format train bench

help:
	@echo "make run        serve the app on http://$(HOST):$(PORT) (SQLite, the shipped model)"
	@echo "make superuser  create an admin account"
	@echo "make test       install the test requirements and chromium, then run pytest"
	@echo "make test-fast  the quick tier: no browser, no real stack, no training"
	@echo "make lint       ruff check and format check"
	@echo "make train      train a model from $(DATA) into models/"
	@echo "make bench      measure the shipped model's speed"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps: pip runs again only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@ $(VENV)/.installed

# TensorFlow: training, and the tests marked `tensorflow`.
$(VENV)/.installed-train: requirements.txt requirements-train.txt | $(PY)
	$(PY) -m pip install -r requirements-train.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

install-train: $(VENV)/.installed-train

# Local development: DEBUG on (runserver serves static/), SQLite unless
# DATABASE_URL says otherwise, the model in models/.
run: export DJANGO_DEBUG ?= 1
run: install live-deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py runserver $(HOST):$(PORT)

migrate: export DJANGO_DEBUG ?= 1
migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable

superuser: export DJANGO_DEBUG ?= 1
superuser: migrate
	$(PY) manage.py createsuperuser

test: install-dev install-train chromium node-deps nginx-test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The edit-test loop: real Postgres and Redis when there, but no browser, no
# gunicorn/nginx stack and no training run.
test-fast: install-dev live-deps
	$(PY) -m pytest -m "not browser and not stack and not slow" $(PYTEST_ARGS)

# axe-core for the accessibility test and LiteRT.js for the live page, pinned
# by package-lock.json.
node-deps:
	@if [ ! -f node_modules/axe-core/axe.min.js ] || [ ! -f node_modules/@litertjs/core/dist/index.js ]; then \
		npm ci --no-audit --no-fund; \
	fi

# The live page needs LiteRT.js from npm; without npm the rest of the site works.
live-deps:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory node-deps; \
	else echo "npm is missing: the live page (/live/) stays off until npm ci has run"; fi

# The browser test drives Debian's chromium; it is never downloaded by playwright.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Debian's chromium for the browser test"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install-dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

train: install-train
	$(PY) -m classifier.ml train --data $(DATA) --out models/

bench: install
	$(PY) -m classifier.ml bench --model models/

# Targets of the deployment (docker-test and friends) live in mk/.
-include mk/*.mk
