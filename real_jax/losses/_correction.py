r"""Rollout corrections: when the sampler's policy is not the trainer's.

An engine samples with one numerical policy `mu` (vLLM in bfloat16, say) and
trains another, `pi_old`, the same weights evaluated by the trainer (float32).
The losses' ratios and scores are taken against `pi_old`, the trainer's own
recomputation (verl's "decoupled" mode), so the mismatch enters only through
the per-token ratio `rho_t = pi_old(o_t) / mu(o_t)`; these corrections act on
it. Each returns a new `logp` and `mask` for any loss of `real_jax.losses`:

- `tis_token`: truncated importance sampling, the detached weight
  `min(rho_t, cap)` on each token's gradient (verl `rollout_is: token`,
  `rollout_is_threshold: 2.0`, `verl/trainer/ppo/rollout_corr_helper.py`).
- `tis_seq`: the same with one weight per rollout, `min(prod_t rho_t, cap)`
  (verl `rollout_is: sequence`).
- `icepop`: masked importance sampling: tokens with `rho_t` outside
  `[1 / cap, cap]` leave the loss, its normalisers included (IcePop; verl's
  token-level rejection sampling, whose lower bound defaults to 1 / upper).
- `seq_mask`: DeepSeek-V3.2's off-policy sequence mask: a rollout below its
  group's mean reward (negative advantage) whose mean token log-ratio
  `mean_t log(mu / pi_theta)` exceeds `kl_threshold` leaves the loss (TRL
  `off_policy_mask_threshold`, whose documentation suggests 0.5,
  `trl/trainer/grpo_trainer.py`). It reads the current policy, so it is
  decided at each update.

A weight `w` enters as `logp + (w - 1) * (logp - stop_gradient(logp))`: the
same value (so every ratio, score and clip is unchanged) and `w` times the
gradient through each token's log-probability. For a token-level objective
this is the engines' `w * loss_t`; REAL has no ratio to truncate, and the
weight scales the rollout's score gradient instead (docs/derivations.md,
"Rollout corrections").
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

CORRECTIONS = ("none", "tis_token", "tis_seq", "icepop", "seq_mask")
DEFAULT_CAP = 2.0
DEFAULT_KL_THRESHOLD = 0.5

__all__ = ["CORRECTIONS", "DEFAULT_CAP", "DEFAULT_KL_THRESHOLD", "Corrected",
           "rollout_correction", "mismatch_stats"]


class Corrected(NamedTuple):
  """A corrected batch: `logp` (same values, reweighted gradient), `mask`, and the
  share of the originally masked tokens whose weight the correction changed."""
  logp: Array
  mask: Array
  changed_fraction: Array


def _scale_gradient(logp: Array, weight: Array) -> Array:
  return logp + (weight - 1.0) * (logp - jax.lax.stop_gradient(logp))


def rollout_correction(kind: str, logp: Array, old_logp: Array, behaviour_logp: Array,
                       mask: Array, rewards: Array, *, cap: float = DEFAULT_CAP,
                       kl_threshold: float = DEFAULT_KL_THRESHOLD) -> Corrected:
  """Applies correction `kind` (one of `CORRECTIONS`) to a `[..., G, T]` batch.

  Args:
    kind: the correction.
    logp: the trainer's current log-probabilities (differentiated).
    old_logp: `pi_old`, the trainer's log-probabilities before the step's updates.
    behaviour_logp: `mu`, the sampler's log-probabilities of the same tokens.
    mask: `[..., G, T]` bool, the response tokens.
    rewards: `[..., G]`; `seq_mask` masks rollouts below their group's mean.
    cap: the truncation of `tis_*` and the band `[1 / cap, cap]` of `icepop` (> 1).
    kl_threshold: `seq_mask`'s bound on the mean token log-ratio (> 0).
  """
  if kind not in CORRECTIONS:
    raise ValueError(f"`kind` must be one of {', '.join(CORRECTIONS)}; got {kind!r}.")
  if not cap > 1.0:
    raise ValueError(f"`cap` must be > 1, got {cap!r}.")
  if not kl_threshold > 0.0:
    raise ValueError(f"`kl_threshold` must be > 0, got {kl_threshold!r}.")
  mask = jnp.asarray(mask, bool)
  if kind == "none":
    return Corrected(logp, mask, jnp.zeros((), jnp.float32))
  n_tokens = jnp.maximum(jnp.sum(mask), 1)
  log_rho = jnp.where(mask, old_logp - behaviour_logp, 0.0)
  log_cap = jnp.log(jnp.asarray(cap, logp.dtype))
  if kind in ("tis_token", "tis_seq"):
    if kind == "tis_seq":  # the sequence's log-ratio, on each of its tokens
      log_rho = jnp.broadcast_to(jnp.sum(log_rho, -1, keepdims=True), log_rho.shape)
    weight = jnp.where(mask, jnp.exp(jnp.minimum(log_rho, log_cap)), 1.0).astype(logp.dtype)
    truncated = mask & (log_rho > log_cap)
    return Corrected(_scale_gradient(logp, jax.lax.stop_gradient(weight)), mask,
                     (jnp.sum(truncated) / n_tokens).astype(jnp.float32))
  if kind == "icepop":
    keep = mask & (jnp.abs(log_rho) <= log_cap)
  else:  # seq_mask
    rewards = jnp.asarray(rewards)
    present = jnp.any(mask, -1)
    n = jnp.maximum(jnp.sum(present, -1, keepdims=True), 1)
    group_mean = jnp.sum(jnp.where(present, rewards, 0.0), -1, keepdims=True) / n
    below = present & (rewards < group_mean)
    drift = jnp.where(mask, behaviour_logp - jax.lax.stop_gradient(logp), 0.0)
    mean_drift = jnp.sum(drift, -1) / jnp.maximum(jnp.sum(mask, -1), 1)
    keep = mask & ~(below & (mean_drift > kl_threshold))[..., None]
  return Corrected(logp, keep, (jnp.sum(mask & ~keep) / n_tokens).astype(jnp.float32))


def mismatch_stats(old_logp: Array, behaviour_logp: Array, mask: Array) -> dict[str, Array]:
  """How far the sampler's policy is from the trainer's, over a batch's response tokens.

  Returns float32 scalars: `mismatch_kl`, the token-mean k3 estimate of
  KL(mu || pi_old) from tokens sampled from mu (`rho - 1 - log rho`, 0 when
  the two agree); `is_ratio_min` and `is_ratio_max`, the extreme token ratios
  `rho_t = pi_old / mu`; and `seq_log_ratio_max`, the largest `|sum_t log rho_t|`
  over rollouts (the log of the sequence ratio, which overflows long before it
  is read).
  """
  mask = jnp.asarray(mask, bool)
  log_rho = jnp.where(mask, old_logp - behaviour_logp, 0.0).astype(jnp.float32)
  k3 = jnp.where(mask, jnp.expm1(log_rho) - log_rho, 0.0)
  some = jnp.any(mask)  # otherwise every statistic is undefined: NaN
  defined = lambda x: jnp.where(some, x, jnp.nan)  # noqa: E731
  return {
      "mismatch_kl": defined(jnp.sum(k3) / jnp.maximum(jnp.sum(mask), 1)),
      "is_ratio_min": defined(jnp.exp(jnp.min(jnp.where(mask, log_rho, jnp.inf)))),
      "is_ratio_max": defined(jnp.exp(jnp.max(jnp.where(mask, log_rho, -jnp.inf)))),
      "seq_log_ratio_max": defined(jnp.max(jnp.abs(jnp.sum(log_rho, -1)))),
  }
