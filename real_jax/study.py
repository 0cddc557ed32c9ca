r"""Command: run a study's sweep (resumable), then select, bootstrap and plot it.

  python -m real_jax.study --config=experiments/configs/study_offpolicy.py \
      --workdir=runs/study --out=docs/study [--config.steps=...] [--rerun_check=5]

The sweep is the config's `get_sweep()`, run by the sweep runner into
`--workdir` (finished points are skipped). The report goes to `--out`:
`per_seed.csv`, `summary.csv` (learning rate chosen on validation pass@1,
test pass@1 with 95% bootstrap intervals over seeds, REAL's paired
difference) and the figures. The logic is `real_jax.reporting.study`.
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
_MULTI = distributed.define_flags()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  cli.loaded(_CONFIG.value)
  workdir, start = _WORKDIR.value, time.perf_counter()
  try:
    distributed.initialize_from_flags(_MULTI)
    points, status = sweep.run_config_sweep(
        _CONFIG.value, config_flags.get_config_filename(flags.FLAGS["config"]), workdir,
        log=distributed.lead_print, mesh=scan.default_mesh())
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if not distributed.is_lead():  # process 0 writes the summary
    sys.exit(1 if status["failed"] else 0)
  out = study.report(points, workdir, _OUT.value or workdir, _CONFIG.value)
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
