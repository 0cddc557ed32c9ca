r"""Command: one resumable RL run of a config.

  python -m real_jax.train --config=experiments/configs/addition.py --workdir=DIR \
      [--config.loss=grpo --config.tau=0.5 ...]

Logs `DIR/metrics.jsonl` (the schema of `real_jax.training.metrics`) and
TensorBoard events (`DIR/tb`), checkpoints to `DIR/checkpoints`; the same
command resumes an interrupted run. The logic is `real_jax.training.loop.train`.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from real_jax.training import cli
from real_jax.training import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it exists).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  result = loop.train(cli.checked(_CONFIG.value), _WORKDIR.value,
                      log=lambda s: print(s, flush=True))
  print(f"done: {result.steps} steps in {result.seconds:.0f}s; metrics in "
        f"{result.workdir}/metrics.jsonl")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
