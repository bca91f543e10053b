# The two commands a newcomer needs: `make book` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: the book's data (apt.txt, also used by Binder) and the test browser.
# A name may be followed by a comment (`name  # why`); comments are dropped.
APT_PACKAGES      := $(shell sed 's/\#.*//' apt.txt | xargs)
APT_TEST_PACKAGES := $(shell sed 's/\#.*//' apt-test.txt | xargs)
# The lock: requirements.txt is generated from requirements.in by uv (pinned in the lock
# itself) for the Python of runtime.txt, which Binder uses too.
UV_PIN      := $(shell grep -m1 '^uv==' requirements.txt)
LOCK_PYTHON := $(patsubst python-%,%,$(strip $(file < runtime.txt)))

QUICK_OUT := _build/quick
PDF       := _build/pdf/book.pdf

.PHONY: help setup apt apt-test book book-quick pdf pdf-quick lock test unit nbval site-test lab-test lab bench lint clean weights

help:
	@echo "make book   - set up .venv and build the full book into _build/html"
	@echo "make test   - set up .venv, then unit tests, nbval, quick book build, browser tests"
	@echo "make lab    - JupyterLab on the chapters"
	@echo "make bench  - time and peak memory of every chapter at quick and full scale"
	@echo "make weights - retrain the colorization chapter's committed runs (data/runs)"
	@echo "make pdf    - the whole book as one PDF, $(PDF)"
	@echo "make lock   - regenerate the lock requirements.txt from requirements.in"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml apt.txt
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_PACKAGES)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(UV_PIN)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	touch $@

# Regenerate the lock after editing requirements.in (needs the package registry).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet requirements.in --universal --python-version $(LOCK_PYTHON) \
	  -o requirements.txt

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

# The whole book as one PDF: Sphinx's single-page HTML (reusing the executed notebooks in
# the build's cache) printed by Debian's Chromium through Playwright, then read back by
# tests/test_pdf.py with poppler. No LaTeX. `make pdf` prints the full-scale book (run after
# `make book`); `make pdf-quick` the quick-scale one (after `make book-quick`).
PDF_FROM ?= .
pdf: $(STAMP) apt-test
	BOOK_BUILD=1 $(BIN)/jupyter-book build -W --keep-going --builder singlehtml --path-output $(PDF_FROM) .
	$(BIN)/python _ext/book_pdf.py $(PDF_FROM)/_build/singlehtml $(PDF_FROM)/$(PDF)
	PDF_FILE=$(PDF_FROM)/$(PDF) SINGLE_DIR=$(PDF_FROM)/_build/singlehtml \
	  $(BIN)/python -m pytest -m browser tests/test_pdf.py
	@echo "The PDF is $(PDF_FROM)/$(PDF)"

pdf-quick: $(STAMP)
	BOOK_QUICK=1 $(MAKE) --no-print-directory pdf PDF_FROM=$(QUICK_OUT)

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not browser and not lab" tests

# Two notebooks at a time (pytest-xdist), each whole in one worker and one kernel, in order.
# The slowest start first (by `make bench`'s quick-scale times), so that the two workers
# finish close together; every other notebook follows.
NBVAL_FIRST := chapters/02_activation_functions.ipynb chapters/01_l1_l2_regularization.ipynb \
               chapters/03_rrelu_evaluation.ipynb chapters/05_freezing_graphs.ipynb
NBVAL_ALL   := $(NBVAL_FIRST) $(filter-out $(NBVAL_FIRST),$(sort $(wildcard chapters/*.ipynb)))
nbval: $(STAMP)
	BOOK_QUICK=1 $(BIN)/python -m pytest -p no:cacheprovider -n 2 --dist loadfile \
	  --no-loadscope-reorder --nbval-lax --nbval-current-env $(NBVAL_ALL)

site-test: $(STAMP) apt-test
	SITE_DIR=$(or $(SITE_DIR),$(QUICK_OUT)/_build/html) $(BIN)/python -m pytest -m browser tests

# Every chapter run in a real JupyterLab (BOOK_QUICK=1), driven by Chromium.
lab-test: $(STAMP) apt-test
	$(BIN)/python -m pytest -s -m lab tests

test: $(STAMP) apt-test lint unit nbval book-quick site-test pdf-quick lab-test

lint: $(STAMP)
	$(BIN)/ruff check helpers tests benchmarks chapters _ext

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(if $(filter 0,$(shell id -u)),--allow-root) chapters

# Retrain the chapter's committed colorizer runs (data/runs) from scratch with the book's own
# command and settings (helpers/colorizer_cli.py: BOOK_RUNS); prints how long each took.
weights: $(STAMP)
	$(BIN)/python -m helpers.colorizer weights

bench: $(STAMP)
	$(BIN)/python benchmarks/notebooks.py

clean:
	rm -rf _build
