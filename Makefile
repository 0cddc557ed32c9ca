# Two commands for a new user: `make reproduce` and `make test`.
# Both build .venv on first use; nothing relies on what happens to be installed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TUNIX_STAMP := $(VENV)/.installed-tunix
OUT    ?= runs

.PHONY: install install-tunix browser explorer test test-fast test-compat mutants mutation lint doctest docs notebooks reproduce grad-analysis compare study study-length mechanism mechanism-e2 mechanism-e2-push mechanism-e2-confirm mechanism-e3 bench accel-report clean

install: $(STAMP)

# The optional Tunix extra (google-tunix and its data/model-loading stack,
# about 2 minutes to install) and the docs extra; `make test` needs them,
# `make reproduce` does not.
install-tunix: $(TUNIX_STAMP)

# The stamps are rebuilt whenever the declared dependencies change.
define make_venv
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "real_jax needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# A current pip resolves and installs this project's stack in 54 s; the one
	@# Python 3.11 ships (23.2) took 113 s (measured on the 2-core CI machine).
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
endef

# --no-compile: pip's byte-compilation of every installed file took 94 s of a
# 150 s install (the Tunix stack is large); Python compiles what is imported,
# once, on first import.
PIP_INSTALL := $(PY) -m pip install --quiet --no-compile --disable-pip-version-check
# Without this the first-import compilation would be redone by every process.
export PYTHONDONTWRITEBYTECODE :=

$(STAMP): setup.cfg pyproject.toml
	$(make_venv)
	$(PIP_INSTALL) -e '.[test,notebook]'
	@touch $(STAMP)

# One resolution for everything, so a fresh `make test` installs once.
$(TUNIX_STAMP): setup.cfg pyproject.toml
	$(make_venv)
	$(PIP_INSTALL) -e '.[test,notebook,tunix,docs]'
	@touch $(STAMP) $(TUNIX_STAMP)

# The linter first (a second); then, all at once, the docstrings' examples, the
# test suite on every core (pytest-xdist; Tunix integration included) and the
# documentation site, whose build executes the three notebooks once (a failing
# cell fails it). Each of the three leaves a core idle at times (the examples
# always, the site while its last notebook runs, the suite at its tail), so
# together they finish sooner than one after another. The examples' and the
# site's logs are printed after the suite's; any failure fails the target.
TEST_WORKERS ?= auto
TEST_LOGS := $(OUT)/test_logs
test: install-tunix browser
	$(MAKE) --no-print-directory lint
	@mkdir -p $(TEST_LOGS)
	@$(MAKE) --no-print-directory doctest > $(TEST_LOGS)/doctest.log 2>&1 & doctest=$$!; \
	 $(MAKE) --no-print-directory docs > $(TEST_LOGS)/docs.log 2>&1 & docs=$$!; \
	 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=20 tests; suite=$$?; \
	 wait $$doctest; examples=$$?; echo "--- doctest (exit $$examples):"; \
	 tail -n 40 $(TEST_LOGS)/doctest.log; \
	 wait $$docs; site=$$?; echo "--- docs (exit $$site):"; tail -n 40 $(TEST_LOGS)/docs.log; \
	 test $$suite -eq 0 -a $$examples -eq 0 -a $$site -eq 0

lint: install-tunix
	$(PY) -m ruff check .

# The entry points are scripts whose absl flags would collide in one process;
# their examples live in the user guide (docs/guide/), which the tests exercise.
DOCTEST_SKIP := train.py train_scan.py sweep.py study.py grad_analysis/__main__.py \
                integrations/tunix_train.py
doctest: install-tunix
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules real_jax \
	    $(addprefix --ignore=real_jax/,$(DOCTEST_SKIP))

# The site (user guide, results, derivations, API reference, and the notebooks,
# executed here) in docs/_build/html, with every Sphinx warning an error.
# Then the built site in headless Chromium, offline (tests/check_site.py):
# formulas typeset, no external request, the gradient explorer live.
docs: install-tunix
	$(PY) -m sphinx -b html -W --keep-going -q -j auto docs docs/_build/html
	$(PY) tests/check_site.py docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# The gradient explorer's data (docs/explorer/data/explorer.json, about 3 minutes; the shipped
# objectives and the mechanism study's two registered variants),
# then the site and the explorer's two screenshots.
explorer: install-tunix browser
	$(PY) -m real_jax.grad_analysis.explorer --out docs/explorer/data \
	    --config experiments/configs/mechanism.py
	$(PY) -m sphinx -b html -W --keep-going -q -j auto docs docs/_build/html
	$(PY) tests/check_site.py docs/_build/html --screenshots docs/explorer

# Headless Chromium for the browser tests, from the system's packages when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	 command -v google-chrome >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
	 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium) >/dev/null 2>&1 || echo "could not install chromium: the browser checks will be skipped"; }

test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) -m 'not slow' tests

# The versions setup.cfg admits beyond .venv's: one environment per other
# Python found (3.12 with jax 0.11.2, as GPU images carry; 3.13 with the
# newest jax), each running this tier (.ci/compat). CI (.ci/run) runs it after
# `make test`, its environments built while the suite runs.
COMPAT_TESTS := tests/test_losses.py::TestAgainstNumpyReference::test_float32_keeps_dtype_and_matches \
    tests/test_losses.py::TestGradientsAgainstFiniteDifferences \
    tests/test_losses.py::TestClipRegions \
    tests/test_grad_analysis.py::TestClosedFormsAgainstAutodiff \
    tests/test_grad_analysis.py::TestSweep::test_small_sweep_passes_with_properties \
    tests/test_training.py::TestDrivers::test_loop_and_scan_log_the_same_metrics \
    tests/test_benchmarks.py::test_accelerator_report_tiny \
    tests/test_tunix.py::test_adapter_gradient_equals_real_jax_gradient \
    tests/test_tunix.py::test_adapter_on_eight_devices_equals_one \
    tests/test_multihost.py::TestTrainScan tests/test_multihost.py::TestFailures \
    tests/test_multihost.py::test_tunix_adapter_over_two_processes_equals_one_device \
    tests/test_correction.py tests/test_tasks.py::TestChainAddition \
    tests/test_training.py::TestStep::test_mismatch_regime_samples_in_bfloat16_and_trains_against_pi_old \
    tests/test_sweep.py::TestEndToEnd::test_a_point_is_the_same_to_the_bit_whatever_shares_its_program
test-compat:
	COMPAT_TESTS="$(COMPAT_TESTS)" bash .ci/compat

# Bugs planted one at a time in a copy of the repository, each against the tests
# meant to catch it (tests/mutants.py, about 3 minutes on 2 cores); writes
# docs/mutants.json and its table docs/mutants.md. Not part of `make test`.
mutants: install-tunix
	$(PY) tests/mutants.py

# Mutation testing with cosmic-ray (tests/mutation.py) on a seeded sample of 300
# mutants of the modules that decide a number; resumable in runs/mutation,
# MINUTES=N stops after N minutes. coverage.py maps lines to the tests that run
# them, so each mutant runs only the tests that run its code. Writes docs/mutation.{json,md}.
# Not part of `make test`.
MINUTES ?=
mutation: install-tunix
	$(PY) -m pip install --quiet --no-compile "cosmic-ray==8.7.0" "coverage==7.13.0"
	$(PY) tests/mutation.py $(if $(MINUTES),--minutes $(MINUTES))

# Execute the notebooks in place (outputs are not committed: `git checkout notebooks` drops them).
notebooks: install
	$(PY) -m pytest --nbmake --overwrite notebooks

grad-analysis: install
	$(PY) -m real_jax.grad_analysis --out $(OUT)/grad_analysis

# The derivation check, then REAL and GRPO (2 seeds each) from one base model, as a sweep.
reproduce: install
	$(PY) -m real_jax.grad_analysis --out $(OUT)/grad_analysis
	@echo "report: $(OUT)/grad_analysis/report.json  figures: $(OUT)/grad_analysis/figure1.png $(OUT)/grad_analysis/figure_variants.png"
	$(PY) -m real_jax.sweep --config=experiments/configs/reproduce.py --workdir=$(OUT)/reproduce_rl \
	    --config.base.dir=$(OUT)/base_models

# The untuned comparison (docs/results/comparison.md): addition.py's get_sweep(), 6 losses x 3 seeds, through the sweep runner.
compare: install
	$(PY) -m real_jax.sweep --config=experiments/configs/addition.py --workdir=$(OUT)/compare \
	    --config.base.dir=$(OUT)/base_models

# The off-policy study (6 losses x 3 regimes x 5 learning rates x 5 seeds, about 30 minutes on
# 2 cores): resumable in $(OUT)/study; the tables and figures are written to docs/study/.
study: install
	$(PY) -m real_jax.study --config=experiments/configs/study_offpolicy.py --workdir=$(OUT)/study \
	    --out=docs/study --config.base.dir=$(OUT)/base_models

# The mechanism study's E1 (REAL against frozen REAL, GRPO and GPG; 480 runs,
# 20 seeds for the primary arms): resumable, budget 120 minutes on 2 cores.
mechanism: install
	$(PY) -m real_jax.study --config=experiments/configs/mechanism.py --workdir=$(OUT)/mechanism_e1 \
	    --out=docs/mechanism/e1 --config.base.dir=$(OUT)/base_models --rerun_check=5

# E2: the lagged sampler (6 losses x lags 0, 2, 8 x 2 learning rates x 6 seeds).
mechanism-e2: install
	$(PY) -m real_jax.study --config=experiments/configs/mechanism.py:e2 \
	    --workdir=$(OUT)/mechanism_e2 --out=docs/mechanism/e2 --config.base.dir=$(OUT)/base_models

# E2's push: GRPO and REAL at lags 0, 8, 32 and lr 1e-3, 3e-3 (3 seeds), tried because the lag alone did not
# reach the domination regime.
mechanism-e2-push: install
	$(PY) -m real_jax.study --config=experiments/configs/mechanism.py:e2_push \
	    --workdir=$(OUT)/mechanism_e2_push --out=docs/mechanism/e2_push --config.base.dir=$(OUT)/base_models

# E2's confirmation: REAL against frozen REAL at lag 8, declared primary, 20 fresh seeds.
mechanism-e2-confirm: install
	$(PY) -m real_jax.study --config=experiments/configs/mechanism.py:e2_confirm \
	    --workdir=$(OUT)/mechanism_e2_confirm --out=docs/mechanism/e2_confirm \
	    --config.base.dir=$(OUT)/base_models

# E3: entropy under sparse and dense rewards (5 losses x 2 regimes x 2 base models x 20 seeds,
# 300 steps; about 80 minutes on 2 cores).
mechanism-e3: install
	$(PY) -m real_jax.study --config=experiments/configs/mechanism.py:e3 \
	    --workdir=$(OUT)/mechanism_e3 --out=docs/mechanism/e3 --config.base.dir=$(OUT)/base_models \
	    --rerun_check=5

# The length study (chain-of-thought addition, two update regimes, a bfloat16
# sampler with and without TIS); resumable, budget 120 minutes on 2 cores.
study-length: install
	$(PY) -m real_jax.study --config=experiments/configs/study_length.py \
	    --workdir=$(OUT)/study_length --out=docs/study_length --config.base.dir=$(OUT)/base_models \
	    --rerun_check=5

# Benchmarks (figures printed, and written as JSON under $(OUT)/). torch is pinned to
# the CPU wheel; a bare `torch` would pull the newest CUDA build.
bench: install
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) benchmarks/losses.py --json $(OUT)/bench_losses.json
	$(PY) benchmarks/training.py --json $(OUT)/bench_training.json

# The accelerator report on whatever JAX sees (CPU, GPU or TPU): runs/accelerator/report.{json,md}.
# On the lent GPU machine, see benchmarks/README.md for the no-network install.
accel-report: install
	$(PY) benchmarks/accelerator.py --out $(OUT)/accelerator

clean:
	rm -rf $(VENV) .venv-compat-* $(OUT) .pytest_cache .hypothesis *.egg-info
