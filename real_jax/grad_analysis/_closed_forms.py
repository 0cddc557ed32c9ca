"""Closed-form gradient weights of every objective (paper.md sections 2-4).

Written from the formulas, with no `jax.grad` anywhere: these are what the
autodiff gradients of `real_jax.losses` are checked against. The inputs of the
formulas (sequence scores `sbar`, GRPO advantages `A`) come from the tested
helpers `real_jax.losses.sequence_scores` and `group_advantages`; everything
that is a derivative is written out here.

Everything is computed in log space so that scores of +-20 with `tau = 0.05`
(`sbar / tau = 400`) neither overflow nor lose the weight to underflow early.

Shape letters: `B` groups, `G` rollouts per group, `T` tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from real_jax import losses

Array = jax.Array


class LabelWeights(NamedTuple):
  """Per-rollout weights `dL_g / dsbar_k` of one group's loss (before batch normalisation).

  Attributes:
    weights: `[..., G]` signed derivative of the group loss w.r.t. `sbar_k`.
    c_plus: `[..., G]` REAL's `C+ = 1 + sum_{i in O+, i != k} exp(-sbar_i/tau)`
      for positives (1 elsewhere); `inf` where it overflows the dtype.
    c_minus: `[..., G]` REAL's `C- = 1 + sum_{j in O-, j != k} exp(sbar_j/tau)`
      for negatives (1 elsewhere).
  """
  weights: Array
  c_plus: Array
  c_minus: Array


def _log_sum_others(z: Array, members: Array) -> Array:
  """`log(1 + sum_{i in members, i != k} exp(z_i))` for every k: `[G] -> [G]`.

  O(G) and exact to a few ulp. With the terms scaled by the group maximum,
  the sum over `i != k` is the total minus term k for every k but the
  maximum itself; those differences are at least the maximum's term, so they
  cannot cancel. The maximum's own sum leaves it out directly and is scaled by
  the second largest term, so that it cannot underflow either.
  """
  neg_inf = jnp.full_like(z, -jnp.inf)
  zm = jnp.where(members, z, neg_inf)
  is_top = jnp.arange(z.shape[-1]) == jnp.argmax(zm)
  z_top = jnp.max(zm)
  z_second = jnp.max(jnp.where(is_top, neg_inf, zm))
  safe = lambda x: jnp.where(jnp.isfinite(x), x, jnp.zeros((), z.dtype))  # noqa: E731
  terms = jnp.exp(zm - safe(z_top))
  rest = jnp.log(jnp.maximum(jnp.sum(terms) - terms, 0.0)) + safe(z_top)
  top = jnp.log(jnp.sum(jnp.where(is_top, 0.0, jnp.exp(zm - safe(z_second))))) + safe(z_second)
  return jnp.logaddexp(jnp.where(is_top, top, rest), 0.0)


def _log_sum(z: Array, members: Array) -> Array:
  """`log(sum_{i in members} exp(z_i))`, -inf for no member, as a scalar."""
  return jax.nn.logsumexp(jnp.where(members, z, -jnp.inf))


def anchored_weight(scores: Array, log_c: Array, tau, positive: Array) -> Array:
  r"""REAL's weight for a given constant `C` (as `log C`), elementwise.

  .. math::
     k \in O^+: -\frac{1}{\tau}\,\frac{1}{1 + C e^{\bar s_k/\tau}},\qquad
     k \in O^-: +\frac{1}{\tau}\,\frac{1}{1 + C e^{-\bar s_k/\tau}}

  `C = 1` (`log_c = 0`) gives BCE's weight.
  """
  sign = jnp.where(positive, 1.0, -1.0).astype(scores.dtype)
  return -sign / tau * jax.nn.sigmoid(-(log_c + sign * scores / tau))


def real_group_weights(scores: Array, positive: Array, negative: Array, tau) -> LabelWeights:
  """REAL: `dL_g/dsbar_k` through the constants `C+` and `C-` (paper.md section 3)."""
  log_c_plus = _log_sum_others(-scores / tau, positive)
  log_c_minus = _log_sum_others(scores / tau, negative)
  log_c = jnp.where(positive, log_c_plus, log_c_minus)
  valid = jnp.any(positive) & jnp.any(negative)
  w = anchored_weight(scores, log_c, tau, positive)
  zero = jnp.zeros((), scores.dtype)
  w = jnp.where(valid & (positive | negative), w, zero)
  one = jnp.ones((), scores.dtype)
  return LabelWeights(w, jnp.where(positive, jnp.exp(log_c_plus), one),
                      jnp.where(negative, jnp.exp(log_c_minus), one))


def grad_group_weights(scores: Array, positive: Array, negative: Array, tau) -> LabelWeights:
  r"""GRAD: the seed form for positives, 0 for negatives.

  .. math:: \Big|\frac{\partial L}{\partial \bar s_k}\Big| =
     \frac{e^{-\bar s_k/\tau}}{\tau\,(1 + \sum_{i\in O^+} e^{-\bar s_i/\tau})}
  """
  log_denominator = jnp.logaddexp(0.0, _log_sum(-scores / tau, positive))
  w = -jnp.exp(-scores / tau - log_denominator) / tau
  valid = jnp.any(positive) & jnp.any(negative)
  zero = jnp.zeros((), scores.dtype)
  one = jnp.ones_like(scores)
  return LabelWeights(jnp.where(valid & positive, w, zero), one, one)


def bce_group_weights(scores: Array, positive: Array, negative: Array, tau) -> LabelWeights:
  """BCE: REAL's form with `C+ = C- = 1` (no coupling inside the group)."""
  w = anchored_weight(scores, jnp.zeros((), scores.dtype), tau, positive)
  valid = jnp.any(positive) & jnp.any(negative)
  one = jnp.ones_like(scores)
  return LabelWeights(jnp.where(valid & (positive | negative), w, 0.0).astype(scores.dtype),
                      one, one)


def real_product_group_weights(scores: Array, positive: Array, negative: Array,
                               tau) -> LabelWeights:
  r"""Product-style: with `N = sum_{O-} e^{sbar_j/tau}`, `P = sum_{O+} e^{-sbar_i/tau}`,

  .. math::
     k\in O^+: -\frac{1}{\tau}\frac{N e^{-\bar s_k/\tau}}{1 + NP},\qquad
     k\in O^-: +\frac{1}{\tau}\frac{P e^{\bar s_k/\tau}}{1 + NP}
  """
  log_n = _log_sum(scores / tau, negative)
  log_p = _log_sum(-scores / tau, positive)
  log_1p_np = jax.nn.softplus(log_n + log_p)
  w_pos = -jnp.exp(log_n - scores / tau - log_1p_np) / tau
  w_neg = jnp.exp(log_p + scores / tau - log_1p_np) / tau
  valid = jnp.any(positive) & jnp.any(negative)
  zero = jnp.zeros((), scores.dtype)
  w = jnp.where(positive, w_pos, jnp.where(negative, w_neg, zero))
  one = jnp.ones_like(scores)
  return LabelWeights(jnp.where(valid, w, zero), one, one)


LABEL_CLOSED_FORMS = {
    "real": real_group_weights,
    "grad": grad_group_weights,
    "bce": bce_group_weights,
    "real_product": real_product_group_weights,
}


class BatchLabelWeights(NamedTuple):
  """Closed-form `dL/dsbar_k` of a batched label-based loss.

  Attributes:
    weights: `[B, G]` derivative of the batch loss w.r.t. each `sbar_k`.
    group_weights: `[B, G]` the same before dividing by `normaliser`.
    c_plus, c_minus: `[B, G]` REAL's constants (1 for the other objectives).
    normaliser: scalar the summed group losses are divided by.
    positive, negative: `[B, G]` bool.
  """
  weights: Array
  group_weights: Array
  c_plus: Array
  c_minus: Array
  normaliser: Array
  positive: Array
  negative: Array


def label_weights(name: str, logp: Array, old_logp: Array, mask: Array,
                  rewards: Array, *, tau=0.5) -> BatchLabelWeights:
  """Closed-form per-rollout weights of `real_jax.losses.<name>` on a batch."""
  if name not in LABEL_CLOSED_FORMS:
    raise ValueError(f"`name` must be one of {sorted(LABEL_CLOSED_FORMS)}; got {name!r}.")
  m = mask != 0
  scores = losses.sequence_scores(logp, old_logp, m)
  present = jnp.any(m, axis=-1)
  positive = present & (rewards > 0.5)
  negative = present & ~(rewards > 0.5)
  group = jax.vmap(lambda s, p, n: LABEL_CLOSED_FORMS[name](s, p, n, tau))(
      scores, positive, negative)
  valid = jnp.any(positive, -1) & jnp.any(negative, -1)
  if name == "bce":  # mean over the rollouts of mixed groups
    normaliser = jnp.sum(jnp.where(valid[:, None], present, False))
  else:  # sum over groups / number of non-empty groups
    normaliser = jnp.sum(jnp.any(present, -1))
  normaliser = jnp.maximum(normaliser, 1).astype(scores.dtype)
  return BatchLabelWeights(group.weights / normaliser, group.weights,
                           group.c_plus, group.c_minus, normaliser, positive, negative)


class ClippedWeights(NamedTuple):
  """Closed-form per-token weights `dL/ds_{k,t}` of a clipped objective.

  Attributes:
    token_weights: `[B, G, T]` derivative of the batch loss w.r.t. each token's
      log-ratio `s_{k,t}`: `agg_factor * (-A_k rho) * (not clipped)`, spread
      as `1/|o_k|` over the tokens for the sequence-level ratio.
    unit_weights: `[B, G, T]` `rho (not clipped)`: the weight per unit `|A|`
      without the aggregation factor, the paper's Figure 1 quantity `e^s`.
    clipped: `[B, G, T]` bool, the clip is active (A > 0 and rho > 1 + eps_high,
      or A < 0 and rho < 1 - eps_low).
    advantages: `[B, G]`.
    agg_factor: `[B, G, T]` derivative of the aggregated loss w.r.t. each
      token's loss.
    ratio: `[B, G, T]` the importance ratio seen by each token.
  """
  token_weights: Array
  unit_weights: Array
  clipped: Array
  advantages: Array
  agg_factor: Array
  ratio: Array


# Read from the losses' registry (their signatures), never restated here.
CLIPPED_DEFAULTS = {
    name: {**{k: losses.defaults(name)[k]
              for k in ("epsilon_low", "epsilon_high", "scale_rewards", "loss_agg_mode")},
           "sequence_level": losses.spec(name).sequence_level}
    for name in losses.CLIPPED_LOSSES
}


def aggregation_factor(mask: Array, loss_agg_mode: str, dtype, norm_length=None) -> Array:
  """`d(aggregated loss)/d(token loss)` for each of verl's modes, `[B, G, T]`."""
  m = mask != 0
  seq_len = jnp.sum(m, axis=-1, keepdims=True).astype(dtype)
  n_seq = jnp.maximum(jnp.sum(seq_len > 0), 1).astype(dtype)
  if loss_agg_mode == "token-mean":
    factor = 1.0 / jnp.maximum(jnp.sum(seq_len), 1)
    factor = jnp.broadcast_to(factor, m.shape)
  elif loss_agg_mode == "seq-mean-token-mean":
    factor = jnp.broadcast_to(1.0 / (jnp.maximum(seq_len, 1) * n_seq), m.shape)
  elif loss_agg_mode == "seq-mean-token-sum":
    factor = jnp.broadcast_to(1.0 / n_seq, m.shape)
  elif loss_agg_mode == "seq-mean-token-sum-norm":
    horizon = m.shape[-1] if norm_length is None else norm_length
    factor = jnp.full(m.shape, 1.0 / horizon)
  else:
    raise ValueError(f"`loss_agg_mode` must be one of {losses.AGG_MODES}; got {loss_agg_mode!r}.")
  return jnp.where(m, factor, 0.0).astype(dtype)


def clipped_weights(name: str, logp: Array, old_logp: Array, mask: Array,
                    rewards: Array, *, max_log_ratio: float = 20.0,
                    norm_length=None, **overrides) -> ClippedWeights:
  r"""Closed-form per-token weights of `real_jax.losses.<name>` (paper.md Fig. 1).

  .. math:: \frac{\partial L}{\partial s_{k,t}} = \alpha_{k,t}\,(-A_k\,\rho)\,
            [\text{not clipped}]\,[\,|\log\rho| < \text{max\_log\_ratio}\,]

  with `alpha` the aggregation factor; for GSPO `rho = e^{sbar_k}` and the
  rollout's summed factor is spread as `1/|o_k|` over its tokens.
  """
  if name not in CLIPPED_DEFAULTS:
    raise ValueError(f"`name` must be one of {sorted(CLIPPED_DEFAULTS)}; got {name!r}.")
  cfg = dict(CLIPPED_DEFAULTS[name], **overrides)
  m = mask != 0
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  present = jnp.any(m, axis=-1)
  adv = jax.vmap(lambda r, p: losses.group_advantages(
      r, p, scale_rewards=cfg["scale_rewards"]))(rewards, present).astype(dtype)
  agg = aggregation_factor(m, cfg["loss_agg_mode"], dtype, norm_length)
  if cfg["sequence_level"]:
    log_ratio = jnp.broadcast_to(losses.sequence_scores(logp, old_logp, m)[..., None], m.shape)
    seq_len = jnp.maximum(jnp.sum(m, -1, keepdims=True), 1).astype(dtype)
    # d sbar / d s_{k,t} = 1/|o_k|; every token of the rollout carries l_k.
    agg = jnp.where(m, jnp.sum(agg, -1, keepdims=True) / seq_len, zero)
  else:
    log_ratio = jnp.where(m, logp - old_logp, zero)
  ratio = jnp.exp(log_ratio)
  a = jnp.broadcast_to(adv[..., None], m.shape)
  clipped = (((a > 0) & (ratio > 1 + cfg["epsilon_high"]))
             | ((a < 0) & (ratio < 1 - cfg["epsilon_low"])))
  alive = m & ~clipped & (jnp.abs(log_ratio) < max_log_ratio)
  unit = jnp.where(alive, ratio, zero)
  token = jnp.where(alive, -a * ratio * agg, zero)
  return ClippedWeights(token, unit, clipped & m, adv, agg, jnp.where(m, ratio, zero))
