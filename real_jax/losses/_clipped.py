"""GRPO-family objectives: clipped importance-ratio surrogates (paper.md section 2).

GRPO, DAPO, Dr.GRPO (token ratio) and GSPO (sequence ratio). One group's
per-token loss matrix `[G, T]` is built by `clipped_surrogate_group`, which is
`jax.vmap`-ed over the `B` groups; `aggregate` then reduces the `[B, G, T]`
matrix with one of verl's aggregation modes, counting tokens and rollouts over
the whole batch.

Shape letters: see `real_jax.losses._common`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from real_jax.losses import _common

Array = jax.Array

AGG_MODES = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
)
KL_TYPES = ("k1", "k2", "k3", "low_var_kl")

# As verl: log-ratios are clamped before exp so that a stale or garbage score
# cannot overflow float32. Beyond the clamp the gradient is 0.
DEFAULT_MAX_LOG_RATIO = 20.0


class ClippedLossAux(NamedTuple):
  """Diagnostics of a clipped objective.

  Attributes:
    scores: `[B, G]` sequence scores `sbar`.
    advantages: `[B, G]` group-normalised advantages (0 for absent rollouts and
      for groups whose rewards are all equal).
    clipped_fraction: `[B, G]` fraction of each rollout's tokens whose clip is
      active (its gradient is cut); 0 or 1 for GSPO.
    clip_fraction: scalar, fraction of all response tokens of the batch clipped.
    kl: scalar, the KL penalty aggregated as the loss (0 without `ref_logp`).
  """
  scores: Array
  advantages: Array
  clipped_fraction: Array
  clip_fraction: Array
  kl: Array


def check_agg_mode(loss_agg_mode: str) -> None:
  if loss_agg_mode not in AGG_MODES:
    raise ValueError(
        f"`loss_agg_mode` must be one of {', '.join(AGG_MODES)}; got {loss_agg_mode!r}.")


def aggregate(loss_mat: Array, mask: Array, loss_agg_mode: str, *,
              norm_length: float | None = None) -> Array:
  """Reduces a `[..., G, T]` token-loss matrix to a scalar, verl's way.

  - `token-mean`: sum over every response token / number of response tokens.
  - `seq-mean-token-mean`: mean over a rollout's tokens, then over rollouts.
  - `seq-mean-token-sum`: sum over a rollout's tokens, mean over rollouts.
  - `seq-mean-token-sum-norm`: sum over every response token / `norm_length`
    (Dr.GRPO's fixed horizon; default `T`, as verl's `loss_mask.shape[-1]`).

  Rollouts with no response token (padding) count in no denominator.
  """
  check_agg_mode(loss_agg_mode)
  m = _common.as_bool_mask(mask)
  dtype = loss_mat.dtype
  token_loss = jnp.where(m, loss_mat, jnp.zeros((), dtype))
  seq_sum = jnp.sum(token_loss, axis=-1)
  seq_len = jnp.sum(m, axis=-1).astype(dtype)
  n_seq = jnp.sum(seq_len > 0).astype(dtype)
  if loss_agg_mode == "token-mean":
    return jnp.sum(seq_sum) / jnp.maximum(jnp.sum(seq_len), 1)
  if loss_agg_mode == "seq-mean-token-mean":
    return jnp.sum(seq_sum / jnp.maximum(seq_len, 1)) / jnp.maximum(n_seq, 1)
  if loss_agg_mode == "seq-mean-token-sum":
    return jnp.sum(seq_sum) / jnp.maximum(n_seq, 1)
  horizon = loss_mat.shape[-1] if norm_length is None else norm_length
  return jnp.sum(seq_sum) / jnp.asarray(horizon, dtype)


def kl_penalty(logp: Array, ref_logp: Array, kl_type: str) -> Array:
  """Per-token KL estimate to a reference policy (Schulman's k1, k2, k3).

  `k3`/`low_var_kl` is `exp(ref - logp) - (ref - logp) - 1`, with the log-ratio
  clamped to [-20, 20] and the result to [-10, 10] as in verl.
  """
  if kl_type == "k1":
    return logp - ref_logp
  if kl_type == "k2":
    return 0.5 * jnp.square(logp - ref_logp)
  if kl_type in ("k3", "low_var_kl"):
    log_ratio = jnp.clip(ref_logp - logp, -20.0, 20.0)
    return jnp.clip(jnp.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)
  raise ValueError(f"`kl_type` must be one of {', '.join(KL_TYPES)}; got {kl_type!r}.")


def clipped_surrogate_group(logp: Array, old_logp: Array, mask: Array,
                            rewards: Array, *, epsilon_low: float,
                            epsilon_high: float, scale_rewards: bool = True,
                            sequence_level: bool = False,
                            max_log_ratio: float = DEFAULT_MAX_LOG_RATIO
                            ) -> tuple[Array, Array, Array]:
  r"""Clipped surrogate of one group, per token.

  .. math::
     \ell_{k,t} = \max\big(-A_k\rho_{k,t},\;
                  -A_k\,\mathrm{clip}(\rho_{k,t}, 1-\epsilon_{low}, 1+\epsilon_{high})\big)

  with `rho = exp(s_{k,t})` (token level) or `rho_k = exp(sbar_k)` broadcast
  over the rollout's tokens (`sequence_level=True`, GSPO).

  Args:
    logp, old_logp, mask: `[G, T]`.
    rewards: `[G]`.

  Returns:
    `(token_loss [G, T], advantages [G], clipped [G, T] bool)`, masked
    positions 0 / False.
  """
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  present = jnp.any(m, axis=-1)
  adv = _common.group_advantages(rewards, present, scale_rewards=scale_rewards)
  adv = adv.astype(dtype)
  if sequence_level:
    log_ratio = _common.sequence_scores(logp, old_logp, m)[:, None]
  else:
    log_ratio = jnp.where(m, logp - old_logp, jnp.zeros((), dtype))
  ratio = jnp.exp(jnp.clip(log_ratio, -max_log_ratio, max_log_ratio))
  a = adv[:, None]
  unclipped = -a * ratio
  clipped = -a * jnp.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
  token_loss = jnp.broadcast_to(jnp.maximum(unclipped, clipped), m.shape)
  is_clipped = jnp.broadcast_to(clipped > unclipped, m.shape)
  return (jnp.where(m, token_loss, jnp.zeros((), dtype)), adv, is_clipped & m)


def _clipped_objective(logp, old_logp, mask, rewards, *, epsilon_low,
                       epsilon_high, scale_rewards, loss_agg_mode, beta,
                       ref_logp, kl_type, sequence_level, max_log_ratio,
                       norm_length) -> tuple[Array, ClippedLossAux]:
  _common.check_batch(logp, old_logp, mask, rewards)
  _common.check_positive("epsilon_low", epsilon_low, allow_zero=True)
  _common.check_positive("epsilon_high", epsilon_high, allow_zero=True)
  _common.check_positive("beta", beta, allow_zero=True)
  _common.check_positive("max_log_ratio", max_log_ratio)
  if norm_length is not None:
    _common.check_positive("norm_length", norm_length)
  check_agg_mode(loss_agg_mode)
  if kl_type not in KL_TYPES:
    raise ValueError(f"`kl_type` must be one of {', '.join(KL_TYPES)}; got {kl_type!r}.")
  if ref_logp is None:
    beta_value = _common.concrete_value(beta)
    if beta_value is None or float(beta_value) != 0.0:
      raise ValueError("`ref_logp` [B, G, T] is required when `beta` is not 0.")
  elif tuple(getattr(ref_logp, "shape", ())) != tuple(logp.shape):
    raise ValueError(
        f"`ref_logp` must have the shape of `logp` {tuple(logp.shape)}, got "
        f"{tuple(getattr(ref_logp, 'shape', ()))}.")

  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  group_fn = functools.partial(
      clipped_surrogate_group, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, scale_rewards=scale_rewards,
      sequence_level=sequence_level, max_log_ratio=max_log_ratio)
  token_loss, adv, is_clipped = jax.vmap(group_fn)(logp, old_logp, m, rewards)
  loss = aggregate(token_loss, m, loss_agg_mode, norm_length=norm_length)
  if ref_logp is None:
    kl = jnp.zeros((), dtype)
  else:
    safe = lambda x: jnp.where(m, x, jnp.zeros((), x.dtype))  # noqa: E731
    kl_mat = kl_penalty(safe(logp), safe(ref_logp).astype(dtype), kl_type)
    kl = aggregate(kl_mat, m, loss_agg_mode, norm_length=norm_length)
    loss = loss + beta * kl

  n_tok = jnp.sum(m, axis=-1).astype(dtype)
  n_clipped = jnp.sum(is_clipped, axis=-1).astype(dtype)
  aux = ClippedLossAux(
      scores=_common.sequence_scores(logp, old_logp, m),
      advantages=adv,
      clipped_fraction=n_clipped / jnp.maximum(n_tok, 1),
      clip_fraction=jnp.sum(n_clipped) / jnp.maximum(jnp.sum(n_tok), 1),
      kl=kl)
  return loss, aux


def grpo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 0.2, epsilon_high: float = 0.2,
         scale_rewards: bool = True,
         loss_agg_mode: str = "seq-mean-token-mean", beta: float = 0.0,
         ref_logp: Array | None = None, kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None) -> tuple[Array, ClippedLossAux]:
  r"""GRPO: token-level clipped surrogate with group-normalised advantages.

  .. math::
     A_k = \frac{r_k - \mathrm{mean}(r)}{\mathrm{std}_{ddof=1}(r) + 10^{-6}},\quad
     \ell_{k,t} = \max\big(-A_k\rho_{k,t}, -A_k\,\mathrm{clip}(\rho_{k,t},
                  1-\epsilon_{low}, 1+\epsilon_{high})\big)

  aggregated with `loss_agg_mode`, plus `beta` times the aggregated KL to
  `ref_logp` when given.

  Args:
    logp, old_logp, mask: `[B, G, T]`; an all-zero mask row is a padding rollout.
    rewards: `[B, G]` (any real values; all-equal groups get A = 0).
    epsilon_low, epsilon_high: clip range of the ratio, >= 0.
    scale_rewards: divide by the group std (False: Dr.GRPO's `r - mean`).
    loss_agg_mode: one of `AGG_MODES` (verl's names).
    beta: KL coefficient, >= 0; needs `ref_logp` when not 0.
    ref_logp: `[B, G, T]` reference-policy log-probabilities, or None.
    kl_type: `k1`, `k2`, `k3` or `low_var_kl` (= k3).
    max_log_ratio: log-ratios are clamped to +-this before `exp` (verl: 20).
    norm_length: the fixed horizon of `seq-mean-token-sum-norm` (default T).

  Returns:
    `(loss, aux)`: a scalar and a `ClippedLossAux`.

  References:
    Shao et al., "DeepSeekMath", arXiv 2402.03300 (2024).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, scale_rewards=scale_rewards,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=False, max_log_ratio=max_log_ratio,
      norm_length=norm_length)


def dapo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 0.2, epsilon_high: float = 0.28,
         scale_rewards: bool = True, loss_agg_mode: str = "token-mean",
         beta: float = 0.0, ref_logp: Array | None = None,
         kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None) -> tuple[Array, ClippedLossAux]:
  """DAPO: GRPO with clip-higher (`epsilon_high=0.28`) and `token-mean`.

  Dynamic sampling (dropping all-equal groups) belongs to the sampler, not
  here. Arguments as `grpo`.

  References:
    Yu et al., "DAPO", arXiv 2503.14476 (2025).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, scale_rewards=scale_rewards,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=False, max_log_ratio=max_log_ratio,
      norm_length=norm_length)


def dr_grpo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
            epsilon_low: float = 0.2, epsilon_high: float = 0.2,
            scale_rewards: bool = False,
            loss_agg_mode: str = "seq-mean-token-sum-norm", beta: float = 0.0,
            ref_logp: Array | None = None, kl_type: str = "low_var_kl",
            max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
            norm_length: float | None = None) -> tuple[Array, ClippedLossAux]:
  """Dr.GRPO: GRPO without std scaling and with a fixed-horizon token sum.

  Pass `norm_length` (the maximum response length) to keep the divisor fixed
  across batches of different padded length. Arguments as `grpo`.

  References:
    Liu et al., "Understanding R1-Zero-Like Training", arXiv 2503.20783 (2025).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, scale_rewards=scale_rewards,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=False, max_log_ratio=max_log_ratio,
      norm_length=norm_length)


def gspo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 3e-4, epsilon_high: float = 4e-4,
         scale_rewards: bool = True,
         loss_agg_mode: str = "seq-mean-token-mean", beta: float = 0.0,
         ref_logp: Array | None = None, kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None) -> tuple[Array, ClippedLossAux]:
  r"""GSPO: one clipped term per rollout on the sequence-level ratio.

  .. math::
     \rho_k = e^{\bar s_k},\quad
     \ell_k = \max\big(-A_k\rho_k, -A_k\,\mathrm{clip}(\rho_k, 1-\epsilon_{low}, 1+\epsilon_{high})\big)

  `l_k` is spread over the rollout's tokens, so the default
  `seq-mean-token-mean` is the mean over rollouts. Arguments as `grpo`.

  References:
    Zheng et al., "Group Sequence Policy Optimization", arXiv 2507.18071 (2025).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, scale_rewards=scale_rewards,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=True, max_log_ratio=max_log_ratio,
      norm_length=norm_length)
