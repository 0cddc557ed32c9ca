r"""Command: several seeds of one config as one vmapped program, on every device, any hosts.

  python -m real_jax.train_scan --config=experiments/configs/addition.py --workdir=DIR \
      --seeds=0,1,2,3,4,5,6,7 [--fsdp=1] \
      [--coordinator_address=HOST:PORT --num_processes=N --process_id=I | --distributed]

Rollout groups are sharded over the mesh's `data` axis (every device of
every process) and parameters over `fsdp`. In a multi-process run
(`real_jax.distributed`: the three flags, or `--distributed` to auto-detect a
TPU pod, SLURM or Open MPI) process 0 builds the base model while the others
wait, only process 0 writes `DIR/seed<k>/metrics.jsonl` (the schema of
`real_jax.training.metrics`), and every process takes part in the orbax save
of the final parameters (`DIR/final_params`). The logic is
`real_jax.training.scan`.
"""

import os

from absl import app
from absl import flags
from absl import logging
from flax import nnx
from ml_collections import config_flags
import numpy as np
import orbax.checkpoint as ocp

from real_jax import distributed
from real_jax import metric_names
from real_jax.training import cli
from real_jax.training import metrics
from real_jax.training import scan

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds, trained in one vmapped program.")
_FSDP = flags.DEFINE_integer("fsdp", 1, "Devices per parameter shard (mesh axis fsdp).")
_MULTI = distributed.define_flags()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  cfg, workdir = cli.checked(_CONFIG.value), os.path.abspath(_WORKDIR.value)
  try:
    distributed.initialize_from_flags(_MULTI)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  mesh = scan.default_mesh(fsdp=_FSDP.value)
  log = distributed.lead_print
  log(f"{distributed.describe()}; mesh {dict(mesh.shape) if mesh else 'none'}")
  seeds = [int(s) for s in _SEEDS.value]
  runs, seconds, params = scan.run_points(cfg, seeds, mesh=mesh, log=log, return_params=True)
  with distributed.collective("orbax save of the final parameters"):
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(workdir, "final_params"), nnx.to_pure_dict(params),
                      force=True)
    checkpointer.wait_until_finished()
  if distributed.is_lead():
    for i, seed in enumerate(seeds):
      metrics.write_jsonl(os.path.join(workdir, f"seed{seed}", "metrics.jsonl"),
                          metrics.run_records(scan.point(runs, i), cfg.steps, cfg.eval_every),
                          mode="w")
    final = np.round(runs[metric_names.EVAL_METRIC][:, -1], 3).tolist()
    print(f"{len(seeds)} seeds x {cfg.steps} steps in {seconds:.1f}s; final held-out pass@1 "
          f"per seed: {final}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
