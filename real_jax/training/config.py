r"""The toy RLVR trainer's settings: every field and its default, declared once.

`get_config()` is what `experiments/configs/addition.py` returns; other
configs start from it and change what they study. Fields:

- `task`: a verifiable task of `real_jax.tasks` (`name`, `kwargs`).
- `model`: the policy (`real_jax.model.PolicyConfig` fields, `compute_dtype`).
- `base`: the supervised warm start (`dir` where base models are kept, its
  own seed, lr, batch, budget and the pass@1 `band` it stops in).
- `loss`: a name of `real_jax.losses` (a registered one included), or
  `"package.module:attribute"`, imported and registered on use.
- `tau`: the label-based losses' temperature, traced (swept in one program).
- `compare_loss`: "" (none), or a second objective whose parameter gradient
  is taken on the same minibatch as the loss's, at its own defaults (and the
  config's `tau` if it takes one); the step logs the cosine between the two
  (`grad_cosine`) and trains on `loss` alone. A diagnostic: it costs a
  second forward and backward pass per update.
- `loss_kwargs`: every other hyperparameter of the loss, by the loss's own
  keyword names (`epsilon_high`, `advantage`, `dro_beta`, `k_pos`, ...): one
  field for each hyperparameter a shipped loss takes, None by default (the
  loss's own default, `real_jax.losses.defaults`). A set field the loss does
  not take is an error that lists the ones it does. A sweep names them bare:
  `product(loss=["dro"], dro_beta=[0.01, 0.1])`.
- the RL step: `prompts_per_step` (B) groups of `group_size` (G) rollouts at
  `temperature` / `top_p`, then `ppo_epochs x minibatches` AdamW updates on
  whole groups (`lr`, `weight_decay`, `grad_clip`), for `steps` steps.
- a lagged sampler: `sampler_lag` k > 0 draws each step's rollouts from the
  policy of k steps earlier (its parameters before the last k steps' updates;
  the base model for the first steps), and `pi_old` is that sampler's own
  log-probabilities, as in an asynchronous engine: every update is then off
  the trainer's policy by k steps of updates. 0: the current policy.
- a sampler/trainer mismatch: `sampler_dtype` "bfloat16" samples with the
  policy's weights rounded to bfloat16 and computed in bfloat16 (as an
  inference engine would) while the trainer stays in float32 and recomputes
  `pi_old` itself; `correction` (one of `real_jax.losses.CORRECTIONS`) with
  `correction_cap` and `correction_kl` corrects for it. "float32" samples with
  the trainer's own policy, where every correction is the identity.
- evaluation: greedy (`eval_temperature=0`) pass@1 on `eval_size` held-out
  prompts of `eval_split` drawn from `eval_seed`, at step 0 and every
  `eval_every` steps; with `test_size > 0`, also on that many prompts of the
  test split (`eval_split` is then `validation`, so that hyperparameters are
  chosen on one half of the held-out problems and reported on the other).
  `sampled_k > 0` adds, on the same test prompts, `sampled_k` responses each
  at the training `temperature` (fixed key): sampled pass@1, pass@k and the
  policy's entropy along them (`probe_entropy`). 0: none (they cost k times a
  greedy evaluation).
- the resumable trainer: `checkpoint_every`, `log_every` (a progress line).
- `points_per_program`: how many runs (seeds, taus, learning rates) the
  scanned driver trains in one vmapped program. Every program has exactly this
  width, padded with inert copies when fewer runs are left, because XLA's
  rounding depends on the width: a run's metrics are then the same to the
  last bit whichever other runs share its program, and in whatever order.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from real_jax import losses

__all__ = [
    "get_config",
    "shrink_for_smoke",
    "validate",
    "SAMPLER_DTYPES",
    "loss_kwargs",
    "settable",
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
  c.compare_loss = ""
  c.loss_kwargs = ml_collections.ConfigDict(
      {k: ml_collections.config_dict.placeholder(t) for k, t in _hyperparameter_types().items()})

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
  c.sampler_lag = 0
  c.sampler_dtype = "float32"
  c.correction = "none"
  c.correction_cap = losses.DEFAULT_CAP
  c.correction_kl = losses.DEFAULT_KL_THRESHOLD

  c.eval_every = 10
  c.eval_size = 256
  c.eval_seed = 1234
  c.eval_temperature = 0.0
  c.eval_split = "eval"
  c.test_size = 0
  c.sampled_k = 0
  c.checkpoint_every = 10
  c.log_every = 10
  c.seed = 0
  c.points_per_program = 4
  return c


def shrink_for_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`c` shrunk to seconds, in place, for a smoke run (the studies' `:smoke` configs).

  1-digit operands, a 16-wide 1-layer policy whose warm start stops after 30
  steps whatever its pass@1, 4 steps of 4 prompts x 4 rollouts, 16 held-out
  prompts per set, and programs of 4 runs.
  """
  c.task.kwargs.digits = 1
  c.model.update(width=16, depth=1, heads=2)
  c.base.update(max_steps=30, eval_every=15, eval_size=32, batch_size=32, band=(0.0, 1.0))
  c.update(prompts_per_step=4, group_size=4, steps=4, eval_every=2, eval_size=16,
           test_size=16 if c.test_size else 0, points_per_program=4)
  return c


# A loss's keyword arguments that are no entry of `loss_kwargs`: `tau` is the
# config's own (traced) field, and `ref_logp` is an array, not a setting.
NOT_LOSS_KWARGS = ("tau", "ref_logp")


def settable(loss: str) -> list[str]:
  """The hyperparameters of `loss` that `config.loss_kwargs` can set."""
  return [k for k in losses.hyperparameters(loss) if k not in NOT_LOSS_KWARGS]


def _hyperparameter_types() -> dict[str, type]:
  """Every settable hyperparameter of the shipped losses, with its type: the
  type of a default where one is not None, else float (a clip, a cap, a
  horizon). `tau` is the config's own field, and arrays (`ref_logp`) are no
  settings."""
  types: dict[str, type] = {}
  for name in losses.LOSSES:
    given = losses.defaults(name)
    for k in settable(name):
      if k in given:
        types[k] = type(given[k])
      else:
        types.setdefault(k, float)
  return dict(sorted(types.items()))


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Raises `ValueError` naming the field for a config the trainer cannot run."""
  try:
    losses.get(cfg.loss)
  except ValueError as e:
    raise ValueError(f"`config.loss`: {e}") from None
  loss_kwargs(cfg)  # raises for a hyperparameter the loss does not take
  compare = cfg.get("compare_loss", "")
  if not isinstance(compare, str):
    raise ValueError(f"`config.compare_loss` must be a loss name or '', got {compare!r}.")
  if compare:
    try:
      losses.get(compare)
    except ValueError as e:
      raise ValueError(f"`config.compare_loss`: {e}") from None
  for field in ("prompts_per_step", "group_size", "minibatches", "ppo_epochs", "steps",
                "eval_every", "eval_size", "checkpoint_every", "log_every", "points_per_program"):
    value = cfg.get(field)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"`config.{field}` must be an integer >= 1, got {value!r}.")
  if cfg.prompts_per_step % cfg.minibatches:
    raise ValueError(f"`prompts_per_step` ({cfg.prompts_per_step}) must be divisible by "
                     f"`minibatches` ({cfg.minibatches}): a minibatch holds whole groups.")
  if cfg.eval_split not in ("eval", "validation", "test"):
    raise ValueError(f"`config.eval_split` must be 'eval', 'validation' or 'test', "
                     f"got {cfg.eval_split!r}.")
  if not isinstance(cfg.test_size, int) or cfg.test_size < 0:
    raise ValueError(f"`config.test_size` must be an integer >= 0, got {cfg.test_size!r}.")
  if cfg.test_size and cfg.eval_split != "validation":
    raise ValueError(f"`eval_split` must be 'validation' when `test_size` > 0, so that the "
                     f"two held-out sets are disjoint; got {cfg.eval_split!r}.")
  k = cfg.get("sampled_k", 0)
  if not isinstance(k, int) or k < 0:
    raise ValueError(f"`config.sampled_k` must be an integer >= 0, got {k!r}.")
  if k and not cfg.test_size:
    raise ValueError(f"`config.sampled_k` ({k}) samples on the test prompts: it needs "
                     "`test_size` > 0.")
  lag = cfg.get("sampler_lag", 0)
  if not isinstance(lag, int) or lag < 0:
    raise ValueError(f"`config.sampler_lag` must be an integer >= 0, got {lag!r}.")
  if cfg.sampler_dtype not in SAMPLER_DTYPES:
    raise ValueError(f"`config.sampler_dtype` must be one of {SAMPLER_DTYPES}, "
                     f"got {cfg.sampler_dtype!r}.")
  if cfg.correction not in losses.CORRECTIONS:
    raise ValueError(f"`config.correction` must be one of {', '.join(losses.CORRECTIONS)}; "
                     f"got {cfg.correction!r}.")
  if not cfg.correction_cap > 1:
    raise ValueError(f"`config.correction_cap` must be > 1, got {cfg.correction_cap!r}.")
  if not cfg.correction_kl > 0:
    raise ValueError(f"`config.correction_kl` must be > 0, got {cfg.correction_kl!r}.")
  if not cfg.lr > 0:
    raise ValueError(f"`config.lr` must be > 0, got {cfg.lr!r}.")
  if not cfg.tau > 0:
    raise ValueError(f"`config.tau` must be > 0, got {cfg.tau!r}.")


def loss_kwargs(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.loss_kwargs`'s set fields (None means the loss's own default).

  `tau` is not among them: the step takes it as an argument so that it can be
  traced.

  Raises:
    ValueError: for a set field that `config.loss` does not take, listing the
      ones it does.
  """
  given = {k: v for k, v in (cfg.get("loss_kwargs") or {}).items() if v is not None}
  losses.check_hyperparameters(cfg.loss, given, what="`config.loss_kwargs`",
                               exclude=NOT_LOSS_KWARGS)
  return given


SAMPLER_DTYPES = ("float32", "bfloat16")
