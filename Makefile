# Two commands for a new user: `make reproduce` and `make test`.
# Both build .venv on first use; nothing relies on what happens to be installed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= runs

.PHONY: install test test-fast reproduce grad-analysis clean

install: $(STAMP)

# The stamp is rebuilt whenever the declared dependencies change.
$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "real_jax needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,notebook]'
	@touch $(STAMP)

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m 'not slow'

grad-analysis: install
	$(PY) -m real_jax.grad_analysis --out $(OUT)/grad_analysis

reproduce: install
	$(PY) -m real_jax.grad_analysis --out $(OUT)/grad_analysis
	@echo "report: $(OUT)/grad_analysis/report.json  figures: $(OUT)/grad_analysis/figure1.png $(OUT)/grad_analysis/figure_variants.png"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis *.egg-info
