"""Shared pieces of the RLVR losses: input checks, sequence scores, advantages.

Shape letters used throughout `real_jax.losses`:

  B  rollout groups (prompts) in a batch
  G  rollouts per group (padded: a rollout whose mask row is all zero is absent)
  T  response tokens per rollout (padded: mask is 0 past the response)

A batch is `logp, old_logp, mask: [B, G, T]` and `rewards: [B, G]`. Masked
positions may hold anything (garbage, -inf, NaN): every quantity below reads
them through `jnp.where`, never through a multiplication, so they can change
neither a value nor a gradient.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def concrete_value(x: Any) -> np.ndarray | None:
  """Returns `x` as a NumPy array when it is known at trace time, else None.

  Checks that need values (binary rewards, tau > 0) run eagerly and are
  skipped under `jit`/`vmap`, where the value is a tracer.
  """
  if isinstance(x, jax.core.Tracer):
    return None
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return None
  return np.asarray(x)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
  """Raises ValueError if a concrete hyperparameter is not > 0 (or >= 0)."""
  v = concrete_value(value)
  if v is None:
    return
  if v.shape != ():
    raise ValueError(f"`{name}` must be a scalar, got shape {v.shape}.")
  if not np.isfinite(v):
    raise ValueError(f"`{name}` must be finite, got {v!r}.")
  if allow_zero and v < 0:
    raise ValueError(f"`{name}` must be >= 0, got {float(v)}.")
  if not allow_zero and v <= 0:
    raise ValueError(f"`{name}` must be > 0, got {float(v)}.")


def check_batch(logp: Any, old_logp: Any, mask: Any, rewards: Any) -> None:
  """Validates the ranks, shapes and dtypes of a `[B, G, T]` batch."""
  for name, x in (("logp", logp), ("old_logp", old_logp)):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
      raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"`{name}` must be a float array, got dtype {x.dtype}.")
    if x.ndim != 3:
      raise ValueError(
          f"`{name}` must have rank 3 [B, G, T] (groups, rollouts, tokens), "
          f"got shape {tuple(x.shape)}.")
  if old_logp.shape != logp.shape:
    raise ValueError(
        f"`old_logp` must have the shape of `logp` {tuple(logp.shape)}, got "
        f"{tuple(old_logp.shape)}.")
  if not hasattr(mask, "shape") or tuple(mask.shape) != tuple(logp.shape):
    raise ValueError(
        f"`mask` must have the shape of `logp` {tuple(logp.shape)}, got "
        f"{tuple(getattr(mask, 'shape', ()))}.")
  if not hasattr(rewards, "shape") or tuple(rewards.shape) != tuple(logp.shape[:2]):
    raise ValueError(
        f"`rewards` must have shape [B, G] = {tuple(logp.shape[:2])}, got "
        f"{tuple(getattr(rewards, 'shape', ()))}.")


def check_binary_rewards(rewards: Any, mask: Any) -> None:
  """Label-based objectives read rewards as class labels: they must be 0/1."""
  r = concrete_value(rewards)
  m = concrete_value(mask)
  if r is None or m is None:
    return
  present = np.asarray(m).astype(bool).any(-1)
  values = np.asarray(r)[present]
  if not np.all((values == 0) | (values == 1)):
    bad = np.unique(values[(values != 0) & (values != 1)])[:5]
    raise ValueError(
        "`rewards` must be 0 or 1 for the label-based objectives (REAL, GRAD, "
        f"BCE, product-style); got values such as {bad.tolist()}.")


def as_bool_mask(mask: Array) -> Array:
  return mask if mask.dtype == jnp.bool_ else mask != 0


def sequence_scores(logp: Array, old_logp: Array, mask: Array) -> Array:
  r"""Length-normalised relative log-probability of each rollout.

  .. math:: \bar s_k = \frac{1}{|o_k|} \sum_t m_{k,t}\,
            (\log\pi_\theta(o_{k,t}) - \log\pi_{old}(o_{k,t}))

  Works on any leading shape: `[..., T] -> [...]`. A rollout with no response
  token (all-zero mask row) gets score 0.

  Args:
    logp: `[..., T]` log-probabilities of the sampled tokens, current policy.
    old_logp: `[..., T]` the same under the sampling policy (no gradient flows
      into it by construction of the losses' use; it is treated as data).
    mask: `[..., T]`, nonzero on response tokens.

  Returns:
    `[...]` sequence scores, in the dtype of `logp`.

  Example:
    >>> import jax.numpy as jnp
    >>> logp = jnp.array([[[-1.0, -2.0, jnp.nan]]])
    >>> sequence_scores(logp, jnp.full((1, 1, 3), -1.5), jnp.array([[[1, 1, 0]]]))
    Array([[0.]], dtype=float32)
  """
  m = as_bool_mask(mask)
  diff = jnp.where(m, logp - old_logp, jnp.zeros((), logp.dtype))
  length = jnp.sum(m, axis=-1).astype(logp.dtype)
  return jnp.sum(diff, axis=-1) / jnp.maximum(length, 1)


# The outcome-advantage estimators: Tunix's three names (tunix/rl/algo_core.py),
# then verl's `reinforce_plus_plus_baseline`, `opo` and `grpo_passk`
# (verl/trainer/ppo/core_algos.py).
ADVANTAGE_ESTIMATORS = ("grpo", "rloo", "drgrpo", "reinforce_pp", "opo", "grpo_passk")
# verl's `masked_whiten` adds this to the variance before the square root.
WHITENING_EPS = 1e-8


def check_estimator(advantage: str) -> None:
  if advantage not in ADVANTAGE_ESTIMATORS:
    raise ValueError(f"`advantage` must be one of {', '.join(ADVANTAGE_ESTIMATORS)}; "
                     f"got {advantage!r}.")


def group_advantages(rewards: Array, present: Array, *, estimator: str = "grpo",
                     eps: float = 1e-6, lengths: Array | None = None) -> Array:
  r"""Outcome advantages of one group, `[G] -> [G]`, over its present rollouts.

  - `grpo`: :math:`A_k = (r_k - \mathrm{mean}(r)) / (\mathrm{std}(r) + \epsilon)`,
    with the unbiased (ddof=1) standard deviation and :math:`\epsilon = 10^{-6}`;
  - `drgrpo`: :math:`A_k = r_k - \mathrm{mean}(r)` (Dr.GRPO, no std scaling);
  - `rloo`: :math:`A_k = r_k - \frac{1}{n-1}\sum_{j \ne k} r_j`, the
    leave-one-out baseline over the `n` present rollouts, which equals
    :math:`\frac{n}{n-1}(r_k - \mathrm{mean}(r))` (verl's and Tunix's `rloo`);
  - `reinforce_pp`: :math:`r_k - \mathrm{mean}(r)`, the group stage of
    REINFORCE++-baseline; `batch_advantages` then whitens it over the batch;
  - `opo`: :math:`A_k = r_k - \sum_i |o_i| r_i / \sum_i |o_i|`, OPO's
    length-weighted baseline (needs `lengths`);
  - `grpo_passk`: only the first rollout with the group's best reward gets
    :math:`(r_{max} - r_{second}) / (\mathrm{std}(r) + \epsilon)`, the rest 0
    (verl's `grpo_passk`, pass@k credit).

  A group whose present rewards are all equal, or that has fewer than two
  present rollouts, gets A = 0 exactly; absent rollouts get A = 0
  (docs/derivations.md, "Advantages").
  """
  check_estimator(estimator)
  dtype = rewards.dtype if jnp.issubdtype(rewards.dtype, jnp.floating) else jnp.float32
  r = rewards.astype(dtype)
  zero = jnp.zeros((), dtype)
  n = jnp.sum(present).astype(dtype)
  mean = jnp.sum(jnp.where(present, r, zero)) / jnp.maximum(n, 1)
  centered = jnp.where(present, r - mean, zero)
  std = jnp.sqrt(jnp.sum(centered**2) / jnp.maximum(n - 1, 1))
  r_max = jnp.max(jnp.where(present, r, -jnp.inf))
  r_min = jnp.min(jnp.where(present, r, jnp.inf))
  if estimator == "grpo":
    centered = centered / (std + eps)
  elif estimator == "rloo":
    centered = centered * n / jnp.maximum(n - 1, 1)
  elif estimator == "opo":
    if lengths is None:
      raise ValueError("the `opo` estimator needs the rollouts' `lengths` [G].")
    w = jnp.where(present, lengths.astype(dtype), zero)
    baseline = jnp.sum(w * jnp.where(present, r, zero)) / jnp.maximum(jnp.sum(w), 1)
    centered = jnp.where(present, r - baseline, zero)
  elif estimator == "grpo_passk":
    # Ties for the best reward go to the lowest index, as torch.topk's first
    # index does on CPU; a tie leaves r_max - r_second = 0 for every rollout.
    best = jnp.argmax(jnp.where(present, r, -jnp.inf))
    is_best = jnp.arange(r.shape[0]) == best
    r_second = jnp.max(jnp.where(present & ~is_best, r, -jnp.inf))
    centered = jnp.where(is_best, (r_max - r_second) / (std + eps), zero)
  informative = (n >= 2) & (r_max > r_min)
  return jnp.where(present & informative, centered, zero)


def batch_advantages(rewards: Array, mask: Array, *, estimator: str = "grpo") -> Array:
  r"""The advantages `[B, G]` of a batch: `group_advantages` vmapped over the groups.

  `reinforce_pp` then whitens the group-centred rewards over every response
  token of the batch, as verl's `masked_whiten`: with each rollout weighted by
  its length :math:`|o_k|` and :math:`N = \sum_k |o_k|`,

  .. math::
     \mu = \frac{1}{N}\sum_k |o_k| c_k,\quad
     \sigma^2 = \frac{N}{N-1}\cdot\frac{1}{N}\sum_k |o_k| (c_k - \mu)^2,\quad
     A_k = (c_k - \mu) / \sqrt{\sigma^2 + 10^{-8}}

  so that, unlike every other estimator, a group whose rewards are all equal
  gets :math:`-\mu/\sigma`, not 0. Absent rollouts get 0.

  Args:
    rewards: `[B, G]`.
    mask: `[B, G, T]` response mask (a rollout with no token is absent).
    estimator: one of `ADVANTAGE_ESTIMATORS`.
  """
  check_estimator(estimator)
  m = as_bool_mask(mask)
  present = jnp.any(m, axis=-1)
  lengths = jnp.sum(m, axis=-1)
  adv = jax.vmap(lambda r, p, n: group_advantages(r, p, estimator=estimator, lengths=n))(
      rewards, present, lengths)
  if estimator != "reinforce_pp":
    return adv
  dtype = adv.dtype
  zero = jnp.zeros((), dtype)
  w = jnp.where(present, lengths.astype(dtype), zero)
  total = jnp.sum(w)
  centred = jnp.where(present, adv, zero)
  mu = jnp.sum(w * centred) / jnp.maximum(total, 1)
  var = jnp.sum(w * (centred - mu) ** 2) / jnp.maximum(total - 1, 1)
  return jnp.where(present, (centred - mu) * jax.lax.rsqrt(var + WHITENING_EPS), zero)
