# Two entry points: `make run` (chat over documents/) and `make test`. Both build .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test sysdeps browser clean

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

$(STAMP): pyproject.toml | sysdeps
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# The CPU build of torch (a local file on these machines); a bare `torch` would pull CUDA.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[test,train]'
	touch $(STAMP)

# The chat page (and the answer API under /api) over documents/: open http://127.0.0.1:7860
run: $(STAMP)
	$(VENV)/bin/qa serve --docs documents --host 127.0.0.1 --port 7860

# QA_REQUIRE_BROWSER: the browser test fails, rather than skips, without chromium or playwright.
test: $(STAMP) browser
	QA_REQUIRE_BROWSER=1 $(PY) -m pytest
	# Accuracy gates on the team's eval set (the index goes to a throw-away folder), just below
	# what the shipped answerer measures (sentence 0.836, answered and right 0.754): they catch
	# regressions, not the issue targets (0.9 answered and right), which are not reached yet.
	$(VENV)/bin/qa eval eval/seeds.jsonl --docs documents --index "$$(mktemp -d)" --details none \
	  --min-sentence-accuracy 0.8 --min-answered-accuracy 0.72

clean:
	rm -rf $(VENV) documents/.qa-index
