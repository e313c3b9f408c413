# Two entry points: `make run` (chat over documents/) and `make test`. Both build .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
LOCKVENV := .venv-lock
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test sysdeps browser lock clean

# System packages: Python's venv module (Debian splits it out) and Tesseract, which reads
# scanned PDF pages.
sysdeps:
	@python3 -c "import venv, ensurepip" 2>/dev/null && command -v tesseract >/dev/null || { \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends python3-venv python3-pip \
	    tesseract-ocr tesseract-ocr-eng; }

# The browser test drives Debian's chromium with Python playwright (no browser download).
browser:
	@[ -x /usr/bin/chromium ] || { \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# Every package, torch's CPU build included, at the version and sha256 of requirements.lock
# (what last passed `make test`); the project itself goes on top without touching them.
$(STAMP): pyproject.toml requirements.lock | sysdeps
	python3 -m venv $(VENV)
	$(PIP) install --require-hashes --no-deps -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PIP) check
	touch $(STAMP)

# Refresh requirements.lock from pyproject.toml (keeps the pinned versions that still fit;
# `make lock UPGRADE=1` moves every package to its newest release). Run `make test` after.
lock: | sysdeps
	[ -x $(LOCKVENV)/bin/pip-compile ] || { python3 -m venv $(LOCKVENV) && $(LOCKVENV)/bin/pip install --quiet 'pip-tools>=7.4'; }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCKVENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links --extra test --extra train \
	  $(if $(UPGRADE),--upgrade) --output-file requirements.lock pyproject.toml

# The chat page (and the answer API under /api) over documents/: open http://127.0.0.1:7860
run: $(STAMP)
	$(VENV)/bin/qa serve --docs documents --host 127.0.0.1 --port 7860 --example "When was the second call?"

# QA_REQUIRE_BROWSER: the browser test fails, rather than skips, without chromium or playwright.
test: $(STAMP) browser
	QA_REQUIRE_BROWSER=1 $(PY) -m pytest
	# Accuracy gates on the team's eval set (the index goes to a throw-away folder), just below
	# what the shipped answerer measures (sentence 0.836, answered and right 0.787): they catch
	# regressions, not the issue targets (0.9 answered and right), which are not reached yet.
	$(VENV)/bin/qa eval eval/seeds.jsonl --docs documents --index "$$(mktemp -d)" --details none \
	  --min-sentence-accuracy 0.82 --min-answered-accuracy 0.77

clean:
	rm -rf $(VENV) $(LOCKVENV) documents/.qa-index
