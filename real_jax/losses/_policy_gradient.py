r"""Objectives since the paper that reshape the same weights: CISPO, SAPO, GMPO, GPG,
TOPR, DPPO (TV and KL), DRO and VESPO.

Each reshapes the per-token gradient weight that REAL replaces with a
bounded, monotonic one (docs/derivations.md, "Objectives since the paper"):

- CISPO clips a stop-gradient importance weight instead of the surrogate, so
  no token's gradient is ever cut;
- SAPO replaces the hard clip with a smooth sigmoid gate;
- GMPO takes a geometric mean of token ratios, clipped token by token in log
  space;
- GPG drops the ratio altogether;
- TOPR keeps plain REINFORCE for positives and tapers negatives by their
  truncated sequence ratio;
- DPPO drops the tokens that left a trust region on the sampled token's
  probability; DRO pulls towards pi_old with a squared-log-ratio penalty;
  VESPO weights a rollout by a Gamma-shaped function of its sequence ratio.

Each is written for one group (`*_group`, `[G, T]`), `jax.vmap`-ed over the
`B` groups by `_advantage.advantage_objective`, which also computes the
advantages (any of `ADVANTAGE_ESTIMATORS`), aggregates with verl's modes and
adds the optional KL term, exactly as for GRPO. Defaults and normalisation
follow verl's `verl/trainer/ppo/core_algos.py` (`compute_policy_loss_cispo`,
`_sapo`, `_geo_mean`, `_gpg`) unless a docstring says otherwise.

Shape letters: see `real_jax.losses._common`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from real_jax.losses import _advantage
from real_jax.losses import _common

Array = jax.Array
AdvantageLossAux = _advantage.AdvantageLossAux
DEFAULT_MAX_LOG_RATIO = _advantage.DEFAULT_MAX_LOG_RATIO


def _token_log_ratio(logp: Array, old_logp: Array, m: Array) -> Array:
  return jnp.where(m, logp - old_logp, jnp.zeros((), logp.dtype))


# ----------------------------------------------------------------- CISPO ----


def cispo_group(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
                epsilon_low: float | None, epsilon_high: float,
                max_log_ratio: float = DEFAULT_MAX_LOG_RATIO
                ) -> tuple[Array, Array]:
  r"""CISPO's token losses of one group: :math:`\ell = -\mathrm{sg}(w)\,A\,\log\pi`.

  `w = min(rho, 1 + epsilon_high)`, and also `>= 1 - epsilon_low` unless
  `epsilon_low` is None. Returns `(token_loss, clipped)` as
  `clipped_surrogate_group`; `clipped` marks tokens whose weight was clipped
  (their gradient is kept).
  """
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  adv = advantages.astype(dtype)
  ratio = jnp.exp(jnp.clip(_token_log_ratio(logp, old_logp, m), -max_log_ratio, max_log_ratio))
  weight = jnp.minimum(ratio, 1.0 + epsilon_high)
  clipped = ratio > 1.0 + epsilon_high
  if epsilon_low is not None:
    weight = jnp.maximum(weight, 1.0 - epsilon_low)
    clipped = clipped | (ratio < 1.0 - epsilon_low)
  weight = jax.lax.stop_gradient(weight)
  token_loss = -weight * adv[:, None] * jnp.where(m, logp, jnp.zeros((), dtype))
  return jnp.where(m, token_loss, jnp.zeros((), dtype)), clipped & m


def cispo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
          epsilon_low: float | None = None, epsilon_high: float = 4.0,
          advantage: str = "grpo", loss_agg_mode: str = "token-mean",
          beta: float = 0.0, ref_logp: Array | None = None,
          kl_type: str = "low_var_kl",
          max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
          norm_length: float | None = None,
          positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""CISPO: a clipped, stop-gradient importance weight on :math:`\log\pi`.

  .. math::
     \ell_{k,t} = -\,\mathrm{sg}(w_{k,t})\,A_k\,\log\pi_\theta(o_{k,t}),\qquad
     w = \min\big(\max(\rho, 1-\epsilon_{low}),\ 1+\epsilon_{high}\big)

  so the gradient w.r.t. the log-ratio is :math:`-w A`: never zero, and at
  most :math:`(1+\epsilon_{high})|A|`.

  The engines disagree on `w`. verl (`compute_policy_loss_cispo` in
  `verl/trainer/ppo/core_algos.py`) clips it to the band
  `[1 - epsilon_low, 1 + epsilon_high]` with its actor's clip ratios; TRL
  (`trl/trainer/grpo_trainer.py`, `loss_type="cispo"`) and ms-swift only cap it,
  `w = min(rho, epsilon_high)`, recommending `epsilon_high = 5`. Here
  `epsilon_low=None` means the cap only, and the cap is always
  `1 + epsilon_high`, as every other clip range in real_jax. The default,
  `epsilon_low=None, epsilon_high=4.0`, is the cap `w <= 5` of TRL's
  recommendation and of the MiniMax-M1 paper that introduced CISPO, which
  sets no lower bound and tunes only the upper one. For verl's band pass
  e.g. `epsilon_low=0.2, epsilon_high=0.28`.

  Args:
    logp, old_logp, mask, rewards: as `grpo`.
    epsilon_low: lower clip of the weight (`w >= 1 - epsilon_low`), >= 0, or
      None for no lower bound.
    epsilon_high: upper clip of the weight (`w <= 1 + epsilon_high`), >= 0.
    advantage, loss_agg_mode, beta, ref_logp, kl_type, max_log_ratio, norm_length: as
      `grpo`; `token-mean` by default, as verl and TRL.

  Returns:
    `(loss, aux)`; `aux.clip_fraction` counts the tokens whose weight is clipped.

  References:
    MiniMax, "MiniMax-M1", arXiv 2506.13585 (2025), eq. 4-5.
  """
  if epsilon_low is not None:
    _common.check_positive("epsilon_low", epsilon_low, allow_zero=True)
  _common.check_positive("epsilon_high", epsilon_high, allow_zero=True)
  group_fn = functools.partial(cispo_group, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                               max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)


# ------------------------------------------------------------------ SAPO ----


def _sigmoid(x: Array) -> Array:
  """`sigmoid(x)` as `exp(-softplus(-x))`: the same value, and a derivative
  `sigmoid(x) * sigmoid(-x)` that keeps full relative precision where the gate
  saturates (`sigmoid(x) * (1 - sigmoid(x))` rounds to garbage there)."""
  return jnp.exp(-jax.nn.softplus(-x))


def sapo_group(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
               tau_pos: float, tau_neg: float,
               max_log_ratio: float = DEFAULT_MAX_LOG_RATIO
               ) -> tuple[Array, Array]:
  r"""SAPO's token losses of one group: :math:`-\frac{4}{\tau}\sigma(\tau(\rho-1))\,A`."""
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  adv = advantages.astype(dtype)
  ratio = jnp.exp(jnp.clip(_token_log_ratio(logp, old_logp, m), -max_log_ratio, max_log_ratio))
  a = adv[:, None]
  tau = jnp.where(a > 0, jnp.asarray(tau_pos, dtype), jnp.asarray(tau_neg, dtype))
  gate = _sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
  token_loss = jnp.broadcast_to(-gate * a, m.shape)
  return jnp.where(m, token_loss, jnp.zeros((), dtype)), jnp.zeros(m.shape, bool)


def sapo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         tau_pos: float = 1.0, tau_neg: float = 1.05, advantage: str = "grpo",
         loss_agg_mode: str = "seq-mean-token-mean", beta: float = 0.0,
         ref_logp: Array | None = None, kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         norm_length: float | None = None,
         positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""SAPO: a smooth sigmoid gate in place of the hard clip.

  .. math::
     \ell_{k,t} = -\frac{4}{\tau_g}\,\sigma\big(\tau_g(\rho_{k,t} - 1)\big)\,A_k,
     \qquad \tau_g = \tau_{pos} \text{ if } A_k > 0 \text{ else } \tau_{neg}

  The gradient w.r.t. the log-ratio is
  :math:`-4A\,\sigma(1-\sigma)\,\rho`: exactly :math:`-A` on-policy, peaked near
  :math:`\rho = 1` and decaying smoothly both ways, never exactly zero.

  Defaults as verl's `compute_policy_loss_sapo` (`verl/trainer/ppo/core_algos.py`):
  `tau_pos = 1.0`, `tau_neg = 1.05`, and `seq-mean-token-mean`, which verl
  forces; here `loss_agg_mode` may be changed.

  Args:
    tau_pos, tau_neg: gate temperatures for positive and non-positive
      advantages, > 0.
    Others: as `grpo`.

  References:
    Gao et al., "Soft Adaptive Policy Optimization", arXiv 2511.20347 (2025).
  """
  _common.check_positive("tau_pos", tau_pos)
  _common.check_positive("tau_neg", tau_neg)
  group_fn = functools.partial(sapo_group, tau_pos=tau_pos, tau_neg=tau_neg,
                               max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)


# ------------------------------------------------------------------ GMPO ----


def gmpo_group(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
               epsilon_low: float, epsilon_high: float,
               max_log_ratio: float = DEFAULT_MAX_LOG_RATIO
               ) -> tuple[Array, Array]:
  r"""GMPO's loss of each rollout, :math:`-A_k\rho_k`, spread over its tokens."""
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  adv = advantages.astype(dtype)
  s = _token_log_ratio(logp, old_logp, m)
  sign = jnp.sign(adv)[:, None]
  s_clipped = jnp.clip(s, -epsilon_low, epsilon_high)
  # Sign-aware: a positive token is capped above, a negative one below.
  log_ratio = sign * jnp.minimum(sign * s, sign * s_clipped)
  length = jnp.maximum(jnp.sum(m, axis=-1), 1).astype(dtype)
  mean_log_ratio = jnp.sum(jnp.where(m, log_ratio, zero), axis=-1) / length
  rho = jnp.exp(jnp.clip(mean_log_ratio, -max_log_ratio, max_log_ratio))
  token_loss = jnp.broadcast_to((-adv * rho)[:, None], m.shape)
  clipped = m & (sign * s_clipped < sign * s)
  return jnp.where(m, token_loss, zero), clipped


def gmpo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         epsilon_low: float = 0.4, epsilon_high: float = 0.4,
         advantage: str = "grpo", beta: float = 0.0,
         ref_logp: Array | None = None, kl_type: str = "low_var_kl",
         max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
         positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""GMPO: the geometric mean of token ratios, clipped token by token in log space.

  .. math::
     \ell'_{k,t} = \mathrm{sgn}(A_k)\min\big(\mathrm{sgn}(A_k)\,s_{k,t},\;
       \mathrm{sgn}(A_k)\,\mathrm{clip}(s_{k,t}, -\epsilon_{low}, \epsilon_{high})\big),\quad
     \rho_k = \exp\Big(\frac{1}{|o_k|}\sum_t \ell'_{k,t}\Big),\quad
     L = \mathrm{mean}_k\,(-A_k\,\rho_k)

  The mean is over the batch's present rollouts; there is no aggregation
  mode (verl's `compute_policy_loss_geo_mean` ignores its `loss_agg_mode`).
  Token t of rollout k has gradient :math:`-A_k\rho_k/|o_k|` (before the
  mean over rollouts) where its log-ratio is not clipped, 0 where it is.

  `epsilon_low = epsilon_high = 0.4` are the GMPO paper's log-space clip
  range :math:`(e^{-0.4}, e^{0.4})`, also verl's GMPO recipe. verl applies no
  ±20 clamp here; real_jax clamps the mean log-ratio at `max_log_ratio`, as
  for every other ratio, so that a stale score cannot overflow (identical
  inside the clamp; the gradient is 0 beyond it).

  References:
    Zhao et al., "Geometric-Mean Policy Optimization", arXiv 2507.20673 (2025).
  """
  _common.check_positive("epsilon_low", epsilon_low, allow_zero=True)
  _common.check_positive("epsilon_high", epsilon_high, allow_zero=True)
  group_fn = functools.partial(gmpo_group, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                               max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode="seq-mean-token-mean", beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=None, positive_nll=positive_nll)


# ------------------------------------------------------------------- GPG ----


def gpg_group(logp: Array, old_logp: Array, mask: Array,
              advantages: Array) -> tuple[Array, Array]:
  r"""GPG's token losses of one group: :math:`-A\log\pi`."""
  del old_logp  # GPG has no ratio; the sampling policy enters only through A
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  token_loss = -advantages.astype(dtype)[:, None] * jnp.where(m, logp, jnp.zeros((), dtype))
  return jnp.where(m, token_loss, jnp.zeros((), dtype)), jnp.zeros(m.shape, bool)


def gpg(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
        advantage: str = "drgrpo", loss_agg_mode: str = "token-mean",
        beta: float = 0.0, ref_logp: Array | None = None,
        kl_type: str = "low_var_kl",
        norm_length: float | None = None,
        positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""GPG: the plain policy gradient :math:`\ell_{k,t} = -A_k\log\pi_\theta(o_{k,t})`.

  No ratio and no clip: the gradient w.r.t. the log-ratio is :math:`-A`,
  whatever the policy has drifted to. As verl's `compute_policy_loss_gpg`
  (`verl/trainer/ppo/core_algos.py`), aggregated by `loss_agg_mode`
  (`token-mean` by default, the GPG paper's normalisation by the batch's
  token count). The paper's advantage is `r - mean(r)`, hence
  `advantage="drgrpo"`; its batch factor `alpha = B / B_valid`, a constant
  scale of the step, is left to the learning rate.

  References:
    Chu et al., "GPG: A Simple and Strong Reinforcement Learning Baseline",
    arXiv 2504.02546 (2025).
  """
  return _advantage.advantage_objective(
      gpg_group, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=DEFAULT_MAX_LOG_RATIO, norm_length=norm_length, positive_nll=positive_nll)


# ------------------------------------------------------------------ TOPR ----


def topr_group(logp: Array, old_logp: Array, mask: Array,
               advantages: Array) -> tuple[Array, Array]:
  r"""TOPR's token losses of one group: :math:`-\mathrm{sg}(w_k)\,A_k\log\pi`.

  `w_k = 1` for `A_k >= 0` and `min(rho_k, 1)` for `A_k < 0`, with `rho_k`
  the rollout's sequence ratio `exp(sum_t s_{k,t})`. Returns `(token_loss,
  clipped)` as `gpg_group`: the taper is continuous (both sides give 1 at
  `rho = 1`) and cuts no token, so `clipped` is all False; counting the
  negatives with `rho > 1` would count rounding on-policy.
  """
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  adv = advantages.astype(dtype)
  log_rho = jnp.sum(_token_log_ratio(logp, old_logp, m), axis=-1)
  # min(rho, 1) = exp(min(log rho, 0)): no ratio is ever exponentiated above 1.
  weight = jax.lax.stop_gradient(jnp.where(adv < 0, jnp.exp(jnp.minimum(log_rho, 0.0)), 1.0))
  token_loss = -(weight * adv)[:, None] * jnp.where(m, logp, zero)
  return jnp.where(m, token_loss, zero), jnp.zeros(m.shape, bool)


def topr(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         advantage: str = "drgrpo", loss_agg_mode: str = "seq-mean-token-sum",
         beta: float = 0.0, ref_logp: Array | None = None,
         kl_type: str = "low_var_kl",
         norm_length: float | None = None,
         positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""TOPR, tapered off-policy REINFORCE: an asymmetric, truncated sequence weight.

  .. math::
     \ell_k = -A_k\log\pi(o_k) \ (A_k \ge 0), \qquad
     \ell_k = -\mathrm{sg}\big(\min(\rho_k, 1)\big)\,A_k\log\pi(o_k) \ (A_k < 0)

  with `rho_k = pi(o_k) / pi_old(o_k)` the product of the rollout's token
  ratios. Positives are pushed up at full weight whatever the drift; a
  negative the policy has already made less likely than the sampler did is
  pushed down less, and one it made more likely at most at weight 1. The
  weight is detached: the truncation changes it and adds no gradient path.
  Conventions (docs/derivations.md, "TOPR"): the reward with its group's mean
  as baseline (`advantage="drgrpo"`; the paper's baseline `c` is the group
  mean here), split on the sign of `A`; `log pi(o)` the sum of the token
  log-probabilities (`seq-mean-token-sum`: each rollout's sum, averaged over
  the batch's rollouts). `aux.clip_fraction` is 0: nothing is cut.

  References:
    Le Roux, Bellemare et al., "Tapered Off-Policy REINFORCE", arXiv 2503.14286 (2025),
    eq. 8.
  """
  return _advantage.advantage_objective(
      topr_group, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=DEFAULT_MAX_LOG_RATIO, norm_length=norm_length, positive_nll=positive_nll)


# ------------------------------------------------------------------ DPPO ----

DIVERGENCES = ("tv", "kl")


def binary_kl(old_logp: Array, logp: Array) -> Array:
  r"""The binary KL of DPPO: the sampled token against "every other token".

  .. math:: D = \mu\log\frac{\mu}{\pi} + (1-\mu)\log\frac{1-\mu+10^{-8}}{1-\pi+10^{-8}}

  with `mu = e^{old_logp}` and `pi = e^{logp}`, as verl's
  `compute_policy_loss_dppo_kl`. NaN where a "probability" exceeds 1; every
  comparison with NaN is False, as in verl.
  """
  old_prob, prob = jnp.exp(old_logp), jnp.exp(logp)
  return (old_prob * (old_logp - logp)
          + (1.0 - old_prob) * jnp.log((1.0 - old_prob + 1e-8) / (1.0 - prob + 1e-8)))


def dppo_kept(logp: Array, old_logp: Array, advantages: Array, *, divergence: str,
              epsilon_low: float, epsilon_high: float) -> Array:
  """DPPO's trust region, `[..., T]` bool: the tokens whose gradient is kept.

  A token is dropped when its probability moved past the threshold in the
  direction its advantage pushes it: `A > 0` and `pi - mu > epsilon_high`
  (TV) or `D > epsilon_high` with `pi > mu` (KL); `A <= 0` and
  `mu - pi > epsilon_low` or `D > epsilon_low` with `pi < mu`.
  `advantages` broadcasts against `logp`.
  """
  logp, old_logp = jax.lax.stop_gradient(logp), jax.lax.stop_gradient(old_logp)
  prob, old_prob = jnp.exp(logp), jnp.exp(old_logp)
  if divergence == "tv":
    keep_pos = (prob - old_prob) <= epsilon_high
    keep_neg = (prob - old_prob) >= -epsilon_low
  else:
    d = binary_kl(old_logp, logp)
    keep_pos = (d <= epsilon_high) | (prob <= old_prob)
    keep_neg = (d <= epsilon_low) | (prob >= old_prob)
  return jnp.where(advantages > 0, keep_pos, keep_neg)


def dppo_group(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
               divergence: str, epsilon_low: float, epsilon_high: float, tis_cap: float,
               max_log_ratio: float = DEFAULT_MAX_LOG_RATIO) -> tuple[Array, Array]:
  r"""DPPO's token losses of one group: :math:`-\mathrm{sg}(\min(\rho, C))\,A\,\log\pi` on kept tokens."""
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  a = advantages.astype(dtype)[:, None]
  lp, olp = jnp.where(m, logp, zero), jnp.where(m, old_logp, zero)
  ratio = jnp.exp(jnp.clip(_token_log_ratio(logp, old_logp, m), -max_log_ratio, max_log_ratio))
  weight = jax.lax.stop_gradient(jnp.minimum(ratio, tis_cap))
  kept = dppo_kept(lp, olp, a, divergence=divergence, epsilon_low=epsilon_low,
                   epsilon_high=epsilon_high)
  token_loss = jnp.where(m & kept, -a * weight * lp, zero)
  return token_loss, m & ~kept


def _dppo(divergence, logp, old_logp, mask, rewards, *, epsilon_low, epsilon_high, tis_cap,
          advantage, loss_agg_mode, beta, ref_logp, kl_type, max_log_ratio, norm_length,
          positive_nll):
  _common.check_positive("epsilon_low", epsilon_low)
  _common.check_positive("epsilon_high", epsilon_high)
  _common.check_positive("tis_cap", tis_cap)
  group_fn = functools.partial(dppo_group, divergence=divergence, epsilon_low=epsilon_low,
                               epsilon_high=epsilon_high, tis_cap=tis_cap,
                               max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)


def dppo_tv(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
            epsilon_low: float = 0.15, epsilon_high: float = 0.15, tis_cap: float = 20.0,
            advantage: str = "grpo", loss_agg_mode: str = "token-mean",
            beta: float = 0.0, ref_logp: Array | None = None, kl_type: str = "low_var_kl",
            max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
            norm_length: float | None = None,
            positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""DPPO-Binary-TV: truncated-IS policy gradient inside a total-variation trust region.

  .. math::
     \ell_{k,t} = -\,\mathrm{sg}\big(\min(\rho_{k,t}, C)\big)\,A_k\,\log\pi_\theta(o_{k,t})
                  \cdot \mathbb{1}[\text{kept}]

  where a token is dropped (gradient 0) when its probability moved past the
  threshold in its advantage's direction: `A > 0` and
  :math:`\pi - \mu > \epsilon_{high}`, or `A <= 0` and
  :math:`\mu - \pi > \epsilon_{low}` (`mu = pi_old`). The gradient w.r.t.
  the log-ratio of a kept token is :math:`-\min(\rho, C)A`.

  As verl's `compute_policy_loss_dppo_tv` (`verl/trainer/ppo/core_algos.py`),
  which reads the thresholds from its actor's `clip_ratio_low/high` and the
  cap `C` from `clip_ratio_c` (falling back to 20, which the DPPO paper's
  section 5.4 recommends: a large cap keeps the truncation bias small; name
  it here `tis_cap`, since the dual clip's `clip_ratio_c` means another
  thing). The thresholds 0.15 are verl's DPPO example
  (`examples/dppo_trainer`). Other arguments as `grpo`; `token-mean` as verl.

  References:
    Qi et al., "Rethinking the Trust Region in LLM Reinforcement Learning",
    arXiv 2602.04879 (2026).
  """
  return _dppo("tv", logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
               epsilon_high=epsilon_high, tis_cap=tis_cap, advantage=advantage,
               loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
               max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)


def dppo_kl(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
            epsilon_low: float = 0.05, epsilon_high: float = 0.05, tis_cap: float = 20.0,
            advantage: str = "grpo", loss_agg_mode: str = "token-mean",
            beta: float = 0.0, ref_logp: Array | None = None, kl_type: str = "low_var_kl",
            max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
            norm_length: float | None = None,
            positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""DPPO-Binary-KL: as `dppo_tv`, with the binary KL as the divergence.

  A token with `A > 0` is dropped when :math:`D > \epsilon_{high}` and its
  probability rose; one with `A <= 0` when :math:`D > \epsilon_{low}` and it
  fell (`binary_kl` gives `D`). Thresholds 0.05 as verl's DPPO example;
  otherwise as `dppo_tv` and verl's `compute_policy_loss_dppo_kl`.
  """
  return _dppo("kl", logp, old_logp, mask, rewards, epsilon_low=epsilon_low,
               epsilon_high=epsilon_high, tis_cap=tis_cap, advantage=advantage,
               loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
               max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)


# ------------------------------------------------------------------- DRO ----


def dro_group(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
              dro_beta: float) -> tuple[Array, Array]:
  r"""DRO's token losses of one group: :math:`-(A\log\pi - \frac{\beta}{2}s^2)`."""
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  lp = jnp.where(m, logp, zero)
  s = _token_log_ratio(logp, old_logp, m)
  token_loss = -(advantages.astype(dtype)[:, None] * lp - 0.5 * dro_beta * s**2)
  return jnp.where(m, token_loss, zero), jnp.zeros(m.shape, bool)


def dro(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
        dro_beta: float = 0.1, advantage: str = "grpo", loss_agg_mode: str = "token-mean",
        beta: float = 0.0, ref_logp: Array | None = None, kl_type: str = "low_var_kl",
        norm_length: float | None = None,
        positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""DRO: the policy gradient with a quadratic pull towards the sampling policy.

  .. math:: \ell_{k,t} = -\Big(A_k\log\pi_\theta(o_{k,t}) - \frac{\beta}{2}\,s_{k,t}^2\Big)

  so the gradient w.r.t. the log-ratio is :math:`-A + \beta s`: `-A`
  on-policy, zero at :math:`s = A/\beta`, and non-zero even where `A = 0`
  (the penalty pulls every moved token back). No ratio, no clip.

  As verl's `compute_policy_loss_dro` (`verl/trainer/ppo/core_algos.py`,
  formula in its `tests/trainer/ppo/test_core_algos_dro.py`), which has no
  default for `dro_beta` and raises without one; 0.1 here is the default of
  ModelScope's port of it (`twinkle`, `DROLoss`). `token-mean` as verl.
  """
  _common.check_positive("dro_beta", dro_beta)
  group_fn = functools.partial(dro_group, dro_beta=dro_beta)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=DEFAULT_MAX_LOG_RATIO, norm_length=norm_length, positive_nll=positive_nll)


# ----------------------------------------------------------------- VESPO ----

# TRL clamps the sequence log-ratio below at log(1e-8) (`get_gamma_weights`).
VESPO_MIN_LOG_W = math.log(1e-8)


def vespo_log_weight(log_w: Array, nonneg: Array, *, k_pos: float, lambda_pos: float,
                     k_neg: float, lambda_neg: float) -> Array:
  r""":math:`\log\phi(w) = \lambda + k\log w - \lambda w`, `(k, lambda)` by the sign of `A`."""
  k = jnp.where(nonneg, k_pos, k_neg).astype(log_w.dtype)
  lam = jnp.maximum(jnp.where(nonneg, lambda_pos, lambda_neg), 1e-4).astype(log_w.dtype)
  return lam + k * log_w - lam * jnp.exp(log_w)


def vespo_group(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
                k_pos: float, lambda_pos: float, k_neg: float, lambda_neg: float,
                max_log_ratio: float = DEFAULT_MAX_LOG_RATIO) -> tuple[Array, Array]:
  r"""VESPO's token losses of one group: :math:`-\mathrm{sg}(\phi(w_k))\,A_k\log\pi`."""
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  adv = advantages.astype(dtype)
  s = jnp.clip(_token_log_ratio(logp, old_logp, m), -max_log_ratio, max_log_ratio)
  log_w = jnp.clip(jnp.sum(s, axis=-1), VESPO_MIN_LOG_W, max_log_ratio)
  phi = jnp.exp(vespo_log_weight(log_w, adv >= 0, k_pos=k_pos, lambda_pos=lambda_pos,
                                 k_neg=k_neg, lambda_neg=lambda_neg))
  phi = jax.lax.stop_gradient(jnp.where(jnp.isfinite(phi), phi, zero))
  token_loss = -(phi * adv)[:, None] * jnp.where(m, logp, zero)
  return jnp.where(m, token_loss, zero), jnp.zeros(m.shape, bool)


def vespo(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
          k_pos: float = 2.0, lambda_pos: float = 3.0, k_neg: float = 3.0,
          lambda_neg: float = 2.0, advantage: str = "grpo", loss_agg_mode: str = "token-mean",
          beta: float = 0.0, ref_logp: Array | None = None, kl_type: str = "low_var_kl",
          max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
          norm_length: float | None = None,
          positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""VESPO: a smooth Gamma-shaped weight of the whole sequence's importance ratio.

  .. math::
     \ell_{k,t} = -\,\mathrm{sg}\big(\phi(w_k)\big)\,A_k\log\pi_\theta(o_{k,t}),\quad
     \phi(w) = e^{\lambda}\,w^{k}\,e^{-\lambda w},\quad
     w_k = \exp\Big(\sum_t s_{k,t}\Big)

  with `(k, lambda)` = `(k_pos, lambda_pos)` when `A >= 0`, else
  `(k_neg, lambda_neg)`. `phi(1) = 1`, so on-policy it is the plain policy
  gradient; it peaks at `w = k/lambda` and vanishes both ways. Note `w` is
  the product of the token ratios (a sum of log-ratios, not GSPO's mean).

  As TRL's `loss_type="vespo"` (`trl/trainer/grpo_trainer.py`,
  `get_gamma_weights`: token log-ratios clamped to +-20, `log w` to
  `[log 1e-8, 20]`, `lambda >= 1e-4`, a non-finite `phi` set to 0), with
  TRL's defaults and its global token mean (`token-mean`). TRL folds a
  vLLM importance ratio into `w`; real_jax's `rollout_correction` weights
  the token gradients instead.

  References:
    "VESPO: Variational Sequence-Level Soft Policy Optimization",
    arXiv 2602.10693 (2026).
  """
  for name, value in (("k_pos", k_pos), ("lambda_pos", lambda_pos), ("k_neg", k_neg),
                      ("lambda_neg", lambda_neg)):
    _common.check_positive(name, value)
  group_fn = functools.partial(vespo_group, k_pos=k_pos, lambda_pos=lambda_pos, k_neg=k_neg,
                               lambda_neg=lambda_neg, max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll)
