r"""The trainer shrunk to seconds: 1-digit addition, a 1-layer 16-wide policy, 4 steps.

For smoke runs, the tests and multi-process checks on one machine:

  python -m real_jax.train_scan --config=experiments/configs/tiny.py --workdir=runs/tiny \
      --seeds=0,1,2,3
  python experiments/launch_local_multihost.py 2 --devices_per_process=2 -- \
      python -m real_jax.sweep --config=experiments/configs/tiny.py --workdir=runs/tiny_sweep

4 prompts x 4 rollouts per step, so up to 4 devices hold whole groups. The
base model trains for at most 30 supervised steps with no pass@1 band (the
tests check mechanics, not learning). A few seconds per command on a 2-core
CPU after JAX has compiled.
"""

from real_jax.training import config
from real_jax.training.sweep import product


def get_config():
  c = config.get_config()
  c.task.kwargs.digits = 1
  c.model.width, c.model.depth, c.model.heads = 16, 1, 2
  c.base.update(dir="runs/base_models", max_steps=30, eval_every=15, eval_size=32,
                batch_size=32, band=(0.0, 1.0))
  c.update(prompts_per_step=4, group_size=4, minibatches=2, steps=4, eval_every=2,
           eval_size=16, checkpoint_every=2, log_every=100)
  return c


def get_sweep():
  """Two groups (two losses), four seeds each."""
  return product(loss=["real", "grpo"], seed=[0, 1, 2, 3])
