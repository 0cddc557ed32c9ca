r"""Command: run a study's sweep (resumable), then select, compare and plot it.

  python -m real_jax.study --config=experiments/configs/study_offpolicy.py \
      --workdir=runs/study --out=docs/study [--config.steps=...] [--rerun_check=5]
  python -m real_jax.study --config=... --out=docs/study --tables_only
  python -m real_jax.study --pages       # the results pages, from their templates

The sweep is the config's `get_sweep()`, run by the sweep runner into
`--workdir` (finished points are skipped). The report goes to `--out`:
`per_seed.csv`, `summary.csv` (learning rate chosen on validation pass@1,
test pass@1 with 95% t intervals over seeds, the reference arm's paired
difference with its sign-flip p, Holm-corrected within the primary
comparisons the config's `get_comparisons()` declares and within the rest,
labelled exploratory) and the figures. `--tables_only` remakes the tables
from `OUT/per_seed.csv` alone, without the runs. The logic is
`real_jax.reporting.study`.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from real_jax import distributed
from real_jax.reporting import pages
from real_jax.reporting import study
from real_jax.training import cli
from real_jax.training import scan
from real_jax.training import sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file with get_config() and "
                                          "get_sweep().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder (finished points are skipped).")
_OUT = flags.DEFINE_string("out", None, "Where the tables and figures go (default: workdir).")
_RERUN = flags.DEFINE_integer(
    "rerun_check", 0, "After the sweep, train this many finished points of its first group "
    "again in another grouping and check that their metrics are identical to the bit "
    "(written to OUT/rerun_check.json).")
_TABLES_ONLY = flags.DEFINE_bool(
    "tables_only", False, "Remake summary.csv, summary.md and grid.csv from OUT/per_seed.csv, "
    "and the figures drawn from it alone (no training; --workdir is not needed).")
_PAGES = flags.DEFINE_bool(
    "pages", False, "Render the results pages (docs/results/templates/*.md, every number "
    "computed from the committed CSVs) into docs/results/, and nothing else.")
_DOCS = flags.DEFINE_string("docs", "docs", "The docs folder --pages reads and writes.")
_MULTI = distributed.define_flags()


def _tables_only(config_string: str) -> None:
  if not _OUT.value:
    raise app.UsageError("--tables_only needs --out, the folder holding per_seed.csv.")
  path = os.path.join(_OUT.value, "per_seed.csv")
  if not os.path.exists(path):
    raise app.UsageError(f"--tables_only: no {path}.")
  rows = study.read_per_seed(path)
  tables = study.write_tables(rows, _OUT.value, study.load_comparisons(config_string))
  print(tables["table"])
  print("Figures:", " ".join(study.per_seed_figures(rows, _OUT.value)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  if _PAGES.value:
    try:
      for path in pages.render_all(_DOCS.value):
        print(f"rendered {path}")
    except (ValueError, OSError, KeyError) as e:
      raise app.UsageError(f"--pages: {e}") from None
    return
  if _CONFIG.value is None:
    raise app.UsageError("--config is required (a study config with get_sweep()).")
  cli.loaded(_CONFIG.value)
  config_string = config_flags.get_config_filename(flags.FLAGS["config"])
  try:
    comparisons = study.load_comparisons(config_string)  # declared before anything trains
    if _TABLES_ONLY.value:
      return _tables_only(config_string)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required (the sweep's folder).")
  workdir, start = _WORKDIR.value, time.perf_counter()
  try:
    distributed.initialize_from_flags(_MULTI)
    points, status = sweep.run_config_sweep(
        _CONFIG.value, config_string, workdir,
        log=distributed.lead_print, mesh=scan.default_mesh())
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if not distributed.is_lead():  # process 0 writes the summary
    sys.exit(1 if status["failed"] else 0)
  out = study.report(points, workdir, _OUT.value or workdir, _CONFIG.value, comparisons)
  print(f"\n{out['table']}\n")
  if _RERUN.value:
    check = sweep.rerun_check(_CONFIG.value, points, workdir, _RERUN.value,
                              log=distributed.lead_print, mesh=scan.default_mesh())
    with open(os.path.join(_OUT.value or workdir, "rerun_check.json"), "w") as f:
      json.dump(check, f, indent=1)
    print(f"Rerun in another grouping: {check['identical']} of {len(check['points'])} points "
          f"identical to the bit ({check['seconds']:.0f}s).")
    if check["differing"]:
      sys.exit(1)
  print(f"{sweep.status_line(status, time.perf_counter() - start)} "
        f"Tables: {out['per_seed']} {out['summary']} {out['grid']}  "
        f"Figures: {' '.join(out['figures'])}")
  sys.exit(1 if status["failed"] else 0)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
