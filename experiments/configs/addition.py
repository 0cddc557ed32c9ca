r"""Toy RLVR on 2-digit addition: REAL (default) or any loss, from a supervised base model.

Command:
  python -m real_jax.train --config=experiments/configs/addition.py --workdir=runs/addition_real
  python -m real_jax.train --config=experiments/configs/addition.py --workdir=runs/addition_grpo \
      --config.loss=grpo

Runtime: see the README's comparison table (2-core CPU). What to look at:
`metrics.jsonl` (reward_mean, eval_pass_at_1, entropy, neg_top_share) or
TensorBoard on `--workdir`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = ml_collections.ConfigDict({"name": "addition", "kwargs": {"digits": 2}})
  c.model = ml_collections.ConfigDict(
      {"width": 64, "depth": 2, "heads": 4, "mlp_ratio": 4, "compute_dtype": "float32"})
  c.base = ml_collections.ConfigDict({
      "dir": "runs/base_models", "seed": 0, "lr": 3e-3, "batch_size": 128,
      "max_steps": 3000, "eval_every": 25, "eval_size": 256, "band": (0.2, 0.6)})

  c.loss = "real"
  c.tau = 0.5
  # Clipped objectives: None keeps each loss's own default (GRPO 0.2/0.2, DAPO 0.2/0.28, ...).
  c.epsilon_low = ml_collections.config_dict.placeholder(float)
  c.epsilon_high = ml_collections.config_dict.placeholder(float)
  c.loss_agg_mode = ml_collections.config_dict.placeholder(str)

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
  c.eval_temperature = 0.0  # greedy pass@1
  c.checkpoint_every = 10
  c.log_every = 5
  c.seed = 0
  return c


def get_sweep():
  """Losses x seeds, as in the README's comparison."""
  return [{"loss": loss, "seed": seed}
          for loss in ("grpo", "dapo", "gspo", "real", "bce", "grad") for seed in (0, 1, 2)]
