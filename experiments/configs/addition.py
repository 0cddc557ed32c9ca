r"""Toy RLVR on 2-digit addition from a supervised base model; the untuned comparison
(docs/results/comparison.md).

One run (REAL by default, any loss by name), resumable:
  python -m real_jax.train --config=experiments/configs/addition.py --workdir=runs/addition_real
  python -m real_jax.train --config=experiments/configs/addition.py --workdir=runs/addition_grpo \
      --config.loss=grpo

The comparison, `get_sweep()` (6 losses x 3 seeds, each loss's seeds in one
vmapped program):
  python -m real_jax.sweep --config=experiments/configs/addition.py --workdir=runs/compare
  # or: make compare

Runtime and result: see docs/results/comparison.md (2-core CPU). What to
look at: `summary.csv` and `curves.png` in the sweep folder; per run,
`metrics.jsonl` (reward_mean, eval_pass_at_1, entropy, and the mechanism:
score_neg_mean, weight_neg_max, neg_top_share, kl_old) or TensorBoard.
Every field and its default is documented in `real_jax/training/config.py`.
"""

from real_jax.training import config
from real_jax.training.sweep import product


def get_config():
  c = config.get_config()
  c.points_per_program = 3  # one loss's seeds per program, as the committed comparison ran
  return c


def get_sweep():
  """Losses x seeds, as in the untuned comparison
(docs/results/comparison.md)."""
  return product(loss=["grpo", "dapo", "gspo", "real", "bce", "grad"], seed=[0, 1, 2])
