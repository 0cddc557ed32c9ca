r"""`make reproduce`'s training part: REAL and GRPO from one base model, 2 seeds each.

Command:
  python -m real_jax.sweep --config=experiments/configs/reproduce.py --workdir=runs/reproduce_rl

The addition config (100 steps of 16 prompts x 8 rollouts); each loss's two
seeds train as one vmapped program. Runtime and result: docs/guide/quickstart.md.
"""

from real_jax.training import config
from real_jax.training.sweep import product


def get_config():
  c = config.get_config()
  c.points_per_program = 2  # one loss's two seeds, unpadded
  return c


def get_sweep():
  return product(loss=["real", "grpo"], seed=[0, 1])
