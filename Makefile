# The two commands a newcomer needs: `make book` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: the book's data (apt.txt, also used by Binder) and the test browser.
APT_PACKAGES      := $(shell grep -hv '^\s*\#' apt.txt | xargs)
APT_TEST_PACKAGES := $(shell grep -hv '^\s*\#' apt-test.txt | xargs)

QUICK_OUT := _build/quick

.PHONY: help setup apt apt-test book book-quick test unit nbval site-test lab-test lab bench lint clean

help:
	@echo "make book   - set up .venv and build the full book into _build/html"
	@echo "make test   - set up .venv, then unit tests, nbval, quick book build, browser tests"
	@echo "make lab    - JupyterLab on the chapters"
	@echo "make bench  - time and peak memory of every chapter at quick and full scale"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml apt.txt
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_PACKAGES)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

# Installs Debian packages when apt is available and we may use it; says what to do otherwise.
apt:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "NOTE: Debian packages missing:$$missing. Install them (e.g. sudo apt-get install$$missing);"; \
	  echo "      without them the chapters fall back to Keras' own downloads where they can."; \
	fi

apt-test:
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_TEST_PACKAGES)"

book: $(STAMP)
	BOOK_BUILD=1 $(BIN)/jupyter-book build --all -W --keep-going .
	@echo "The book is in _build/html/index.html"

book-quick: $(STAMP)
	BOOK_QUICK=1 BOOK_BUILD=1 $(BIN)/jupyter-book build --all -W --keep-going --path-output $(QUICK_OUT) .

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not browser and not lab" tests

nbval: $(STAMP)
	BOOK_QUICK=1 $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env chapters/

site-test: $(STAMP) apt-test
	SITE_DIR=$(or $(SITE_DIR),$(QUICK_OUT)/_build/html) $(BIN)/python -m pytest -m browser tests

# Every chapter run in a real JupyterLab (BOOK_QUICK=1), driven by Chromium.
lab-test: $(STAMP) apt-test
	$(BIN)/python -m pytest -s -m lab tests

test: $(STAMP) apt-test lint unit nbval book-quick site-test lab-test

lint: $(STAMP)
	$(BIN)/ruff check helpers tests benchmarks chapters _ext

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(if $(filter 0,$(shell id -u)),--allow-root) chapters

bench: $(STAMP)
	$(BIN)/python benchmarks/notebooks.py

clean:
	rm -rf _build
