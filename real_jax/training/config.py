r"""The toy RLVR trainer's settings: every field and its default, declared once.

`get_config()` is what `experiments/configs/addition.py` returns; other
configs start from it and change what they study. Fields:

- `task`: a verifiable task of `real_jax.tasks` (`name`, `kwargs`).
- `model`: the policy (`real_jax.model.PolicyConfig` fields, `compute_dtype`).
- `base`: the supervised warm start (`dir` where base models are kept, its
  own seed, lr, batch, budget and the pass@1 `band` it stops in).
- `loss` and its hyperparameters: `tau` for the label-based losses;
  `epsilon_low`, `epsilon_high`, `loss_agg_mode`, `advantage` (grpo, rloo,
  drgrpo), `clip_ratio_c` (dual clip), `tau_pos`, `tau_neg` (SAPO) for the
  advantage-weighted ones, each passed only to a loss that takes it (None
  keeps the loss's own default, see `real_jax.losses.defaults`).
- the RL step: `prompts_per_step` (B) groups of `group_size` (G) rollouts at
  `temperature` / `top_p`, then `ppo_epochs x minibatches` AdamW updates on
  whole groups (`lr`, `weight_decay`, `grad_clip`), for `steps` steps.
- evaluation: greedy (`eval_temperature=0`) pass@1 on `eval_size` held-out
  prompts of `eval_split` drawn from `eval_seed`, at step 0 and every
  `eval_every` steps; with `test_size > 0`, also on that many prompts of the
  test split (`eval_split` is then `validation`, so that hyperparameters are
  chosen on one half of the held-out problems and reported on the other).
- the resumable trainer: `checkpoint_every`, `log_every` (a progress line).
"""

from __future__ import annotations

import ml_collections

__all__ = [
    "get_config",
]


def get_config() -> ml_collections.ConfigDict:
  """The toy setting: 2-digit addition, a 2-layer 64-wide policy, REAL at tau 0.5."""
  c = ml_collections.ConfigDict()
  c.task = ml_collections.ConfigDict({"name": "addition", "kwargs": {"digits": 2}})
  c.model = ml_collections.ConfigDict(
      {"width": 64, "depth": 2, "heads": 4, "mlp_ratio": 4, "compute_dtype": "float32"})
  c.base = ml_collections.ConfigDict({
      "dir": "runs/base_models", "seed": 0, "lr": 3e-3, "batch_size": 128,
      "max_steps": 3000, "eval_every": 25, "eval_size": 256, "band": (0.2, 0.6)})

  c.loss = "real"
  c.tau = 0.5
  c.epsilon_low = ml_collections.config_dict.placeholder(float)
  c.epsilon_high = ml_collections.config_dict.placeholder(float)
  c.loss_agg_mode = ml_collections.config_dict.placeholder(str)
  c.advantage = ml_collections.config_dict.placeholder(str)
  c.clip_ratio_c = ml_collections.config_dict.placeholder(float)
  c.tau_pos = ml_collections.config_dict.placeholder(float)
  c.tau_neg = ml_collections.config_dict.placeholder(float)

  c.prompts_per_step = 16
  c.group_size = 8
  c.temperature = 1.0
  c.top_p = 1.0
  c.lr = 3e-4
  c.weight_decay = 0.0
  c.grad_clip = 1.0
  c.ppo_epochs = 1
  c.minibatches = 2
  c.steps = 100

  c.eval_every = 10
  c.eval_size = 256
  c.eval_seed = 1234
  c.eval_temperature = 0.0
  c.eval_split = "eval"
  c.test_size = 0
  c.checkpoint_every = 10
  c.log_every = 10
  c.seed = 0
  return c
