# Two commands do all set-up (see README, "Two commands"): `make lab` and `make test`.
# Both first make sure .venv is installed from requirements.txt (checking the Python before anything else).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := $(shell sed -n 's/^torch==\([^ #]*\).*/\1/p' requirements.txt)
NEWS_PLUGIN := @jupyterlab/apputils-extension:announcements
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# HF_HUB_OFFLINE is NOT exported here: `make lab` stays online, so a hub teacher (README) works in the lab.
# Only `make test` (and .ci/run) run offline, where an accidental download must fail.
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.DEFAULT_GOAL := setup
.PHONY: check-python setup lab lab-zh test browser-deps fonts clean-cache book book-deps

# The pins are for Python 3.11 (Binder's too), and a venv needs ensurepip, which Debian and Ubuntu ship
# separately in python3.11-venv. Say so up front instead of failing halfway through an install.
define check_python
@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "kdlab needs Python 3.11, and '$(PYTHON)' is $$(command -v $(PYTHON) >/dev/null && $(PYTHON) --version 2>&1 | head -n 1 || echo 'not found'). Install Python 3.11 (Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv), then run make again with PYTHON=python3.11." >&2; exit 1; }
@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  echo "'$(PYTHON)' cannot create a virtual environment (its ensurepip module is missing): run 'sudo apt-get install python3.11-venv' (Debian/Ubuntu), then make again." >&2; exit 1; }
endef

check-python:
	$(check_python)

# torch comes from requirements.txt like everything else, so a CPU build of the pinned version that you put into
# .venv first (README) satisfies torch==$(TORCH_PIN) and pip keeps it; the note below only warns before a big download.
$(STAMP): requirements.txt requirements-no-deps.txt requirements-edge.txt pyproject.toml
	$(check_python)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "Could not create $(VENV) with '$(PYTHON)'. On Debian/Ubuntu run 'sudo apt-get install python3.11-venv', then make again." >&2; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "$(VENV) runs $$($(PY) --version 2>&1), not Python 3.11: remove it (rm -rf $(VENV)) and run make again." >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -c 'import importlib.metadata as m, sys; sys.exit(m.version("torch").split("+")[0] != "$(TORCH_PIN)")' 2>/dev/null \
	  || [ "$$(uname -s)" != Linux ] \
	  || echo "note: torch==$(TORCH_PIN) is not in $(VENV) yet. From PyPI, Linux gets the CUDA build (about 2.7 GB of nvidia-* libraries). For the CPU-only build: stop here (Ctrl-C), install torch==$(TORCH_PIN) into $(VENV) as PyTorch's install selector says (Compute Platform: CPU), then make again."
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-no-deps.txt
	# The optional edge extra (ExecuTorch, ~215 MB; not on Binder): installed here so that `make test` tests it too.
	$(PY) -m pip install --quiet -r requirements-edge.txt
	$(PY) -m pip install --quiet --no-deps -e .
	# The Chinese edition's link /kdlab/language/zh-CN (README.zh-CN.md), a Jupyter server extension.
	$(PY) -m kdlab_jupyter
	$(VENV)/bin/jupyter labextension disable --level=sys_prefix "$(NEWS_PLUGIN)"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --notebook-dir=notebooks notebooks/00-Welcome.ipynb

# The Chinese edition (README.zh-CN.md): JupyterLab in Chinese, opening notebooks/zh-CN/00-Welcome.ipynb.
lab-zh: setup
	-@$(MAKE) -s fonts
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --notebook-dir=notebooks --ServerApp.default_url=/kdlab/language/zh-CN

# Every test, all offline: unit tests, the browser test, every notebook run twice under KDLAB_EXERCISES=strict
# (tests/test_exercises.py: stubs must fail, solutions must pass), then the Voila app under nbval.
# The language-model teacher (notebook 11) is trained first (about 5 min on 2 cores, once) and the teacher panel
# of notebook 12 built (about 5 min), so the notebooks' time limits measure the notebooks, not the builds.
test: export HF_HUB_OFFLINE := 1
test: setup browser-deps book-deps fonts
	$(PY) -c "import kdlab; print('language-model teacher:', kdlab.load_lm_teacher(progress=False).path)"
	$(PY) -c "import kdlab; print('teacher panel:', kdlab.load_teacher_panel(kdlab.load_teacher_cache(progress=False), progress=False).path)"
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=1200 -p no:cacheprovider apps

# One search for Chromium, the browser test's own (tests/chromium.py). As root with apt-get and none found,
# install Debian's chromium; otherwise the search prints one line saying what to install.
browser-deps: setup
	@$(PY) tests/chromium.py >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "No Chromium found: installing Debian's chromium with apt-get."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  fi; }
	@$(PY) tests/chromium.py >/dev/null

# A font with Chinese glyphs for the Chinese edition's figures, found by kdlab.language (the one search). As root with
# apt-get and none found, install Debian's fonts-wqy-microhei (5 MB); otherwise print what to install.
fonts: setup
	@$(PY) -c 'import kdlab.language as l; l._font_check()' >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "No font with Chinese glyphs found: installing Debian's fonts-wqy-microhei with apt-get."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null; \
	  fi; }
	@$(PY) -c 'import kdlab.language as l; l._font_check()' >/dev/null

# The rendered book (README "The book"): every notebook executed with the caches, into book/_build/html.
# Sphinx + MyST-NB come from requirements-book.txt (about 77 MB, not in `setup`); `make test` installs them too,
# because tests/test_book.py builds two pages with the same script. MathJax comes from the npm registry (book/build.py).
BOOK_STAMP := $(VENV)/.book-installed
$(BOOK_STAMP): requirements-book.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-book.txt
	touch $(BOOK_STAMP)

book-deps: $(BOOK_STAMP)

book: export HF_HUB_OFFLINE := 1
book: setup book-deps
	$(PY) book/build.py

clean-cache:
	rm -rf .cache/kdlab
