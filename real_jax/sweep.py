r"""Command: run a config's sweep (`get_sweep()`), summarise it and plot it.

  python -m real_jax.sweep --config=experiments/configs/addition.py --workdir=DIR \
      [--config.steps=40 ...]

Points that differ only in seed, tau and learning rate train as one vmapped
program; finished points are skipped when the command runs again. Writes one
folder per point (`metrics.jsonl`, `DONE`), `DIR/summary.csv`, `DIR/curves.png`
and `DIR/sweep.png`, prints the mean +- std table, and exits 1 if a point
failed. The runner is `real_jax.training.sweep`; the summary
`real_jax.reporting.sweep`.
"""

import sys
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from real_jax import distributed
from real_jax.reporting import sweep as report
from real_jax.training import cli
from real_jax.training import scan
from real_jax.training import sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file with get_config() and "
                                          "get_sweep().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder (finished points are skipped).")
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
  summary, plots = report.summarise(points, workdir)
  print(f"\n{report.format_summary(summary)}\n")
  print(f"{sweep.status_line(status, time.perf_counter() - start)} "
        f"Summary: {summary}  Plots: {' '.join(plots)}")
  for p in status["failed"]:
    print(f"  FAILED: {sweep.point_name(p)} (see its FAILED file)")
  sys.exit(1 if status["failed"] else 0)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
