r"""REAL against GRPO over two temperatures and two seeds on 2-digit addition.

Command:
  python -m real_jax.sweep --config=experiments/configs/sweep_tau.py --workdir=runs/sweep_tau

Runtime: about a minute on the 2-core CPU; the 4 points of each loss run as
one vmapped program (seeds x taus). What to look at: `sweep.png` (final
held-out pass@1 and reward against tau and loss), `curves.png` and
`summary.csv`. GRPO ignores tau, so its two tau columns must agree seed by
seed: a built-in check that the vmapped axes do not leak into each other.
"""

from real_jax.training import config
from real_jax.training.sweep import product


def get_config():
  c = config.get_config()
  c.steps = 40
  return c


def get_sweep():
  return product(loss=["real", "grpo"], tau=[0.25, 1.0], seed=[0, 1])
