"""The results pages' tables are the ones their commands make from the committed data.

Each table under docs/ was written by the command that produced its CSV or
JSON (the study, the sweep, the gradient check, the benchmarks). Here each is
remade from the committed CSV/JSON by the same function and compared, so a
number typed by hand, or data changed without its table, fails.
"""

from __future__ import annotations

import functools
import json
import os
import re

import _common as bench_common  # benchmarks/ is on the test path (setup.cfg)
import accelerator  # benchmarks/ again
import pytest

from real_jax import grad_analysis as ga
from real_jax import losses
from real_jax.losses import _registry
from real_jax.reporting import study
from real_jax.reporting import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _read(path: str) -> str:
  with open(os.path.join(DOCS, path)) as f:
    return f.read()


def _json(path: str) -> dict:
  return json.loads(_read(path))


# table (under docs/) -> how its command makes it from the committed data
# Every accelerator report committed (benchmarks/README.md), by device kind.
_ACCELERATORS = sorted(f[:-len(".json")] for f in os.listdir(os.path.join(DOCS, "accelerators"))
                       if f.endswith(".json"))


def _accelerator_table(kind: str) -> str:
  return accelerator.markdown(_json(os.path.join("accelerators", f"{kind}.json")))


TABLES = {
    "study/summary.md": lambda: study.format_summary(
        study.read_summary(os.path.join(DOCS, "study/summary.csv"))) + "\n",
    "study_atlas/summary.md": lambda: study.format_summary(
        study.read_summary(os.path.join(DOCS, "study_atlas/summary.csv"))) + "\n",
    "study_length/summary.md": lambda: study.format_summary(
        study.read_summary(os.path.join(DOCS, "study_length/summary.csv"))) + "\n",
    "study_length/lengths.md": lambda: study.format_lengths(
        study.read_summary(os.path.join(DOCS, "study_length/summary.csv"))) + "\n",
    "comparison_summary.md": lambda: sweep.format_summary(
        os.path.join(DOCS, "comparison_summary.csv")) + "\n",
    "sweep_tau_summary.md": lambda: sweep.format_summary(
        os.path.join(DOCS, "sweep_tau_summary.csv")) + "\n",
    "grad_analysis_cpu.md": lambda: ga.report_markdown(_json("grad_analysis_cpu.json")),
    "bench_losses_cpu.md": lambda: bench_common.losses_table(_json("bench_losses_cpu.json")),
    "bench_training_cpu.md": lambda: bench_common.training_table(
        _json("bench_training_cpu.json")),
    **{f"accelerators/{kind}.md": functools.partial(_accelerator_table, kind)
       for kind in _ACCELERATORS},
    # The mechanism study's tables its page includes (E2's push is quoted, not included).
    **{f"mechanism/{e}/summary.md": functools.partial(
        lambda e: study.format_summary(study.read_summary(
            os.path.join(DOCS, "mechanism", e, "summary.csv"))) + "\n", e)
       for e in ("e1", "e2", "e2_confirm", "e3") if os.path.exists(os.path.join(DOCS, "mechanism", e, "summary.csv"))},
}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_table_is_made_from_the_committed_data(table):
  assert _read(table) == TABLES[table](), (
      f"docs/{table} differs from what its command makes of the committed data")


@pytest.fixture
def registry_restored():
  """Loading a config may register its objectives (mechanism.py): undone after the test."""
  specs, names = dict(_registry._SPECS), dict(losses.LOSSES)
  yield
  _registry._SPECS.clear()
  _registry._SPECS.update(specs)
  losses.LOSSES.clear()
  losses.LOSSES.update(names)


# A committed study's folder -> the config (and argument) that declared its comparisons.
STUDIES = {"study": "study_offpolicy.py", "study_atlas": "study_offpolicy.py:atlas",
           "study_length": "study_length.py", "mechanism/e1": "mechanism.py",
           "mechanism/e2": "mechanism.py:e2", "mechanism/e2_push": "mechanism.py:e2_push",
           "mechanism/e2_confirm": "mechanism.py:e2_confirm", "mechanism/e3": "mechanism.py:e3"}
STUDIES = {k: v for k, v in STUDIES.items() if os.path.exists(os.path.join(DOCS, k, "per_seed.csv"))}


@pytest.mark.parametrize("folder", sorted(STUDIES))
def test_study_tables_are_made_from_the_per_seed_csv(folder, tmp_path, registry_restored):
  """summary.csv and grid.csv: selection, intervals, p and Holm p remade from per_seed.csv."""
  config = os.path.join(ROOT, "experiments", "configs", STUDIES[folder])
  rows = study.read_per_seed(os.path.join(DOCS, folder, "per_seed.csv"))
  study.write_tables(rows, str(tmp_path), study.load_comparisons(config))
  for name in ("summary.csv", "grid.csv"):
    assert (tmp_path / name).read_text() == _read(os.path.join(folder, name)), (
        f"docs/{folder}/{name} differs from what the study makes of per_seed.csv")


def test_every_results_table_is_included_and_no_table_is_typed():
  """The results pages include every generated table, and hold no table of their own."""
  pages = {p: _read(os.path.join("results", p)) for p in os.listdir(os.path.join(DOCS, "results"))
           if p.endswith(".md")}
  included = {os.path.normpath(os.path.join("results", m))
              for text in pages.values() for m in re.findall(r"```\{include\} (\S+)", text)}
  assert included == set(TABLES)
  for name, text in pages.items():
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert not rows, f"docs/results/{name} has a table typed by hand: {rows[0]}"


def test_a_changed_number_is_caught(tmp_path):
  """The comparison itself: one digit changed in the data changes the table."""
  csv_text = _read("comparison_summary.csv")
  mean_row = next(line for line in csv_text.splitlines() if line.startswith("mean,"))
  changed = tmp_path / "summary.csv"
  changed.write_text(csv_text.replace(mean_row, re.sub(r"0\.\d+", "0.999", mean_row, count=1)))
  assert sweep.format_summary(str(changed)) + "\n" != _read("comparison_summary.md")
