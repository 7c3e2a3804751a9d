# Two commands do all set-up (see README): `make lab` and `make test`.
# Both create or refresh the local virtual environment .venv from requirements.txt first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: setup lab test unit notebooks browser-deps clean-cache

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --notebook-dir=notebooks notebooks/00-Welcome.ipynb

# Every test: unit tests, the browser test, and every notebook executed by nbval.
test: setup browser-deps
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=1200 -p no:cacheprovider notebooks apps

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs Debian's chromium: run 'sudo apt-get install chromium', then 'make test' again." >&2; exit 1; fi; }

clean-cache:
	rm -rf .cache/kdlab
