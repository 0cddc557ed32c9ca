"""GRPO-family objectives: clipped importance-ratio surrogates.

GRPO, DAPO, Dr.GRPO (token ratio, optionally dual-clipped), GSPO and LUSPO
(sequence ratio); docs/derivations.md, "The clipped family". One group's
per-token loss matrix `[G, T]` is built by `clipped_surrogate_group`, which
`_advantage.advantage_objective` vmaps over the `B` groups, aggregates with
one of verl's modes and completes with the KL term and the diagnostics.

Shape letters: see `real_jax.losses._common`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from real_jax.losses import _advantage
from real_jax.losses import _common

Array = jax.Array
AdvantageLossAux = _advantage.AdvantageLossAux
DEFAULT_MAX_LOG_RATIO = _advantage.DEFAULT_MAX_LOG_RATIO

def clipped_surrogate_group(logp: Array, old_logp: Array, mask: Array,
                            advantages: Array, *, epsilon_low: float,
                            epsilon_high: float,
                            clip_ratio_c: float | None = None,
                            delta: float | None = None,
                            sequence_level: bool = False,
                            max_log_ratio: float = DEFAULT_MAX_LOG_RATIO
                            ) -> tuple[Array, Array]:
  r"""Clipped surrogate of one group, per token.

  .. math::
     \ell_{k,t} = \max\big(-A_k\rho_{k,t},\;
                  -A_k\,\mathrm{clip}(\rho_{k,t}, 1-\epsilon_{low}, 1+\epsilon_{high})\big)

  with `rho = exp(s_{k,t})` (token level) or `rho_k = exp(sbar_k)` broadcast
  over the rollout's tokens (`sequence_level=True`, GSPO). With
  `clip_ratio_c = c` (dual clip), a token with `A < 0` has its loss capped at
  `-c A`: :math:`\ell = \min(\ell, -cA)`, so its gradient is 0 once
  `rho > c`. With `delta` (INTELLECT-2's two-sided clip, TRL's `delta`), the
  unclipped term's ratio is capped first, :math:`-A\min(\rho, \delta)`,
  whatever the sign of `A`.

  Args:
    logp, old_logp, mask: `[G, T]`.
    advantages: `[G]`.

  Returns:
    `(token_loss [G, T], clipped [G, T] bool)`, masked positions 0 / False.
  """
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  adv = advantages.astype(dtype)
  if sequence_level:
    log_ratio = _common.sequence_scores(logp, old_logp, m)[:, None]
  else:
    log_ratio = jnp.where(m, logp - old_logp, jnp.zeros((), dtype))
  ratio = jnp.exp(jnp.clip(log_ratio, -max_log_ratio, max_log_ratio))
  a = adv[:, None]
  unclipped = -a * (ratio if delta is None else jnp.minimum(ratio, delta))
  clipped = -a * jnp.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
  token_loss = jnp.maximum(unclipped, clipped)
  is_clipped = clipped > unclipped
  if delta is not None:
    is_clipped = is_clipped | (ratio > delta)
  if clip_ratio_c is not None:
    cap = -a * clip_ratio_c
    dual = (a < 0) & (token_loss > cap)
    token_loss = jnp.where(dual, cap, token_loss)
    is_clipped = is_clipped | dual
  token_loss = jnp.broadcast_to(token_loss, m.shape)
  is_clipped = jnp.broadcast_to(is_clipped, m.shape)
  return jnp.where(m, token_loss, jnp.zeros((), dtype)), is_clipped & m


def check_cap(name: str, value) -> None:
  """`clip_ratio_c` and `delta`: None, or a finite number > 1."""
  if value is None:
    return
  c = _common.concrete_value(value)
  if c is not None and not (c.shape == () and np.isfinite(c) and c > 1):
    raise ValueError(f"`{name}` must be a number > 1 (or None to turn it off), got {value!r}.")


def _clipped_objective(logp, old_logp, mask, rewards, *, epsilon_low,
                       epsilon_high, advantage, clip_ratio_c, delta, loss_agg_mode, beta,
                       ref_logp, kl_type, sequence_level, max_log_ratio,
                       norm_length, positive_nll) -> tuple[Array, AdvantageLossAux]:
  _common.check_positive("epsilon_low", epsilon_low, allow_zero=True)
  _common.check_positive("epsilon_high", epsilon_high, allow_zero=True)
  check_cap("clip_ratio_c", clip_ratio_c)
  check_cap("delta", delta)
  group_fn = functools.partial(
      clipped_surrogate_group, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, clip_ratio_c=clip_ratio_c, delta=delta,
      sequence_level=sequence_level, max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)


def grpo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 0.2, epsilon_high: float = 0.2,
         advantage: str = "grpo", clip_ratio_c: float | None = None,
         loss_agg_mode: str = "seq-mean-token-mean", beta: float = 0.0,
         ref_logp: Array | None = None, kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None, delta: float | None = None,
         positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
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
    advantage: the advantage estimator, one of `ADVANTAGE_ESTIMATORS`:
      `grpo` (std-normalised), `rloo` (leave-one-out) or `drgrpo` (mean only).
    clip_ratio_c: dual clip (verl's name): cap the loss of a token with
      `A < 0` at `-clip_ratio_c * A`, so that its gradient is 0 once
      `rho > clip_ratio_c` (> 1). None (the default here, as in the paper's
      GRPO) turns it off; verl's `vanilla` loss turns it on at 3.0
      (`verl/trainer/ppo/core_algos.py`, `compute_policy_loss_vanilla`).
    loss_agg_mode: one of `AGG_MODES` (verl's names).
    beta: KL coefficient, >= 0; needs `ref_logp` when not 0.
    ref_logp: `[B, G, T]` reference-policy log-probabilities, or None.
    kl_type: `k1`, `k2`, `k3` or `low_var_kl` (= k3).
    max_log_ratio: log-ratios are clamped to +-this before `exp` (verl: 20).
    norm_length: the fixed horizon of `seq-mean-token-sum-norm` (default T).
    delta: INTELLECT-2's two-sided clip (TRL's `delta`, `trl/trainer/grpo_trainer.py`):
      the unclipped term becomes :math:`-A\min(\rho, \delta)`, so a token
      with `A < 0` stops moving once `rho > delta`, like the dual clip (TRL
      recommends `delta > 1 + epsilon_high`, which leaves `A > 0` as it was).
      None (the default, as TRL) turns it off; a number must be > 1.
    positive_nll: VAPO's weight on the NLL of the correct rollouts (NeMo-RL's
      `positive_example_nll_weight`, default 0, off; VAPO uses 0.1): adds
      `positive_nll * positive_nll_loss(...)`, whose gradient on each token of
      a rollout with reward > 0 is `-positive_nll / N+` whatever its advantage.

  Returns:
    `(loss, aux)`: a scalar and a `AdvantageLossAux`.

  References:
    Shao et al., "DeepSeekMath", arXiv 2402.03300 (2024).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, advantage=advantage, clip_ratio_c=clip_ratio_c,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=False, max_log_ratio=max_log_ratio,
      norm_length=norm_length, delta=delta, positive_nll=positive_nll)


def dapo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 0.2, epsilon_high: float = 0.28,
         advantage: str = "grpo", clip_ratio_c: float | None = None,
         loss_agg_mode: str = "token-mean",
         beta: float = 0.0, ref_logp: Array | None = None,
         kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None, delta: float | None = None,
         positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  """DAPO: GRPO with clip-higher (`epsilon_high=0.28`) and `token-mean`.

  Dynamic sampling (dropping all-equal groups) belongs to the sampler, not
  here. Arguments as `grpo`, dual clip included.

  References:
    Yu et al., "DAPO", arXiv 2503.14476 (2025).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, advantage=advantage, clip_ratio_c=clip_ratio_c,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=False, max_log_ratio=max_log_ratio,
      norm_length=norm_length, delta=delta, positive_nll=positive_nll)


def dr_grpo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
            epsilon_low: float = 0.2, epsilon_high: float = 0.2,
            advantage: str = "drgrpo", clip_ratio_c: float | None = None,
            loss_agg_mode: str = "seq-mean-token-sum-norm", beta: float = 0.0,
            ref_logp: Array | None = None, kl_type: str = "low_var_kl",
            max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
            norm_length: float | None = None, delta: float | None = None,
            positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  """Dr.GRPO: GRPO without std scaling (`advantage="drgrpo"`) and with a fixed-horizon token sum.

  Pass `norm_length` (the maximum response length) to keep the divisor fixed
  across batches of different padded length. Arguments as `grpo`, dual clip
  included.

  References:
    Liu et al., "Understanding R1-Zero-Like Training", arXiv 2503.20783 (2025).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, advantage=advantage, clip_ratio_c=clip_ratio_c,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=False, max_log_ratio=max_log_ratio,
      norm_length=norm_length, delta=delta, positive_nll=positive_nll)


def gspo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 3e-4, epsilon_high: float = 4e-4,
         advantage: str = "grpo",
         loss_agg_mode: str = "seq-mean-token-mean", beta: float = 0.0,
         ref_logp: Array | None = None, kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None, delta: float | None = None,
         positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""GSPO: one clipped term per rollout on the sequence-level ratio.

  .. math::
     \rho_k = e^{\bar s_k},\quad
     \ell_k = \max\big(-A_k\rho_k, -A_k\,\mathrm{clip}(\rho_k, 1-\epsilon_{low}, 1+\epsilon_{high})\big)

  `l_k` is spread over the rollout's tokens, so the default
  `seq-mean-token-mean` is the mean over rollouts. Arguments as `grpo`
  (no dual clip: verl's GSPO has none).

  References:
    Zheng et al., "Group Sequence Policy Optimization", arXiv 2507.18071 (2025).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, advantage=advantage, clip_ratio_c=None,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=True, max_log_ratio=max_log_ratio,
      norm_length=norm_length, delta=delta, positive_nll=positive_nll)


def luspo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
          epsilon_low: float = 2e-3, epsilon_high: float = 2.5e-3,
          advantage: str = "grpo",
          loss_agg_mode: str = "seq-mean-token-sum", beta: float = 0.0,
          ref_logp: Array | None = None, kl_type: str = "low_var_kl",
          max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
          norm_length: float | None = None, delta: float | None = None,
          positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""LUSPO: GSPO's sequence loss scaled by the rollout's length.

  .. math::
     L = \frac{1}{n}\sum_k |o_k|\,\ell_k,\qquad
     \ell_k = \max\big(-A_k\rho_k, -A_k\,\mathrm{clip}(\rho_k, 1-\epsilon_{low}, 1+\epsilon_{high})\big)

  over the `n` present rollouts, with GSPO's `rho_k = e^{sbar_k}`. GSPO
  spreads `l_k` over the rollout's tokens, so the length factor is exactly
  the `seq-mean-token-sum` aggregation of GSPO's token losses: the default
  here. A rollout's gradient w.r.t. its own score is then `|o_k|` times
  GSPO's, which removes GSPO's bias against long responses.

  As TRL's `loss_type="luspo"` (`trl/trainer/grpo_trainer.py`: the sequence
  loss times `completion_mask.sum(1)`, mean over the local batch), with the
  LUSPO paper's clip range `epsilon = 2e-3`, `epsilon_high = 2.5e-3`
  (section 5.1, quoted in TRL's `docs/source/paper_index.md`). Arguments as
  `grpo`, `delta` included (TRL applies it to LUSPO too).

  References:
    "Length-Unbiased Sequence Policy Optimization", arXiv 2602.05261 (2026).
  """
  return _clipped_objective(
      logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
      epsilon_high=epsilon_high, advantage=advantage, clip_ratio_c=None,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
      kl_type=kl_type, sequence_level=True, max_log_ratio=max_log_ratio,
      norm_length=norm_length, delta=delta, positive_nll=positive_nll)
