"""Closed-form gradient weights of every objective (docs/derivations.md, "Closed forms").

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

from collections.abc import Callable
import dataclasses
import functools
import math
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
  """REAL: `dL_g/dsbar_k` through the constants `C+` and `C-` (docs/derivations.md, "REAL")."""
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
  if name not in LABEL_FORMS:
    raise ValueError(f"`name` must be one of {sorted(LABEL_FORMS)}; got {name!r}.")
  form = LABEL_FORMS[name]
  m = mask != 0
  scores = losses.sequence_scores(logp, old_logp, m)
  present = jnp.any(m, axis=-1)
  positive = present & (rewards > 0.5)
  negative = present & ~(rewards > 0.5)
  group = jax.vmap(lambda s, p, n: form.group(s, p, n, tau))(scores, positive, negative)
  valid = jnp.any(positive, -1) & jnp.any(negative, -1)
  if form.per_rollout:  # mean over the rollouts of mixed groups
    normaliser = jnp.sum(jnp.where(valid[:, None], present, False))
  else:  # sum over groups / number of non-empty groups
    normaliser = jnp.sum(jnp.any(present, -1))
  normaliser = jnp.maximum(normaliser, 1).astype(scores.dtype)
  return BatchLabelWeights(group.weights / normaliser, group.weights,
                           group.c_plus, group.c_minus, normaliser, positive, negative)


class AdvantageWeights(NamedTuple):
  """Closed-form per-token weights `dL/ds_{k,t}` of an advantage-weighted objective.

  Attributes:
    token_weights: `[B, G, T]` derivative of the batch loss w.r.t. each token's
      log-ratio `s_{k,t}`: `agg_factor * (-A_k) * unit_weights + penalty`.
    unit_weights: `[B, G, T]` the weight per unit `|A|` without the
      aggregation factor: the paper's Figure 1 quantity (`e^s` where GRPO's
      clip is open, CISPO's `w`, SAPO's gate derivative, ...).
    clipped: `[B, G, T]` bool, the objective's clip is active on the token.
    advantages: `[B, G]`.
    agg_factor: `[B, G, T]` derivative of the aggregated loss w.r.t. each
      token's loss (for GSPO and GMPO, the rollout's factor spread as
      `1/|o_k|` over its tokens).
    ratio: `[B, G, T]` the token's importance ratio `e^{s_{k,t}}` (GSPO: the
      sequence ratio `e^{sbar_k}`).
    penalty: `[B, G, T]` the part of `dL/ds` that does not scale with `A`:
      DRO's pull `beta s`, KL-Cov's `kappa sgn(s)` on its selected tokens,
      VAPO's NLL `-mu / N+` on correct rollouts (aggregation included); 0
      for the rest.
    edge: `[B, G, T]` tokens within `EDGE_BAND` of a jump of the weight,
      where the derivative is undefined.
  """
  token_weights: Array
  unit_weights: Array
  clipped: Array
  advantages: Array
  agg_factor: Array
  ratio: Array
  penalty: Array
  edge: Array


# Relative distance to a jump of the weight below which a token's derivative
# is left out of the comparison (it is undefined at the jump itself).
EDGE_BAND = {"float32": 1e-5, "float64": 1e-12}


def near_edges(ratio: Array, edges, dtype) -> Array:
  """Tokens whose ratio lies within `EDGE_BAND` (relative) of a clip edge."""
  band = EDGE_BAND[jnp.dtype(dtype).name]
  near = jnp.zeros(ratio.shape, bool)
  for e in edges:
    near = near | (jnp.abs(ratio - e) <= band * e)
  return near


# Checked configurations beyond the registered names: (loss, overrides).
CONFIGURATIONS = {
    **{name: (name, {}) for name in losses.ADVANTAGE_LOSSES},
    "grpo_dual_clip": ("grpo", {"clip_ratio_c": 3.0}),
    "grpo_rloo": ("grpo", {"advantage": "rloo"}),
    # INTELLECT-2's two-sided clip at its report's delta = 4.
    "grpo_delta": ("grpo", {"delta": 4.0}),
    "grpo_bnpo": ("grpo", {"loss_agg_mode": "bnpo"}),
    # VAPO's weight mu = 0.1 on the correct rollouts' NLL.
    "grpo_positive_nll": ("grpo", {"positive_nll": 0.1}),
    "grpo_reinforce_pp": ("grpo", {"advantage": "reinforce_pp"}),
    "grpo_opo": ("grpo", {"advantage": "opo"}),
    "grpo_passk": ("grpo", {"advantage": "grpo_passk"}),
}


def configuration(name: str, **overrides) -> tuple[str, dict]:
  """`(loss name, hyperparameters)` of a checked configuration: the loss's own
  defaults (read from its signature), then the configuration's, then `overrides`."""
  if name not in CONFIGURATIONS:
    raise ValueError(f"`name` must be one of {sorted(CONFIGURATIONS)}; got {name!r}.")
  loss, extra = CONFIGURATIONS[name]
  cfg = {"epsilon_low": None, "clip_ratio_c": None, "delta": None, "positive_nll": 0.0,
         **losses.defaults(loss), **extra}
  losses.check_hyperparameters(loss, overrides, what=f"the overrides of {name!r}")
  cfg.update(overrides)
  return loss, cfg


def configuration_kwargs(name: str, **overrides) -> dict:
  """The keyword arguments that make `real_jax.losses.<loss>` the configuration `name`."""
  loss, cfg = configuration(name, **overrides)
  accepted = losses.hyperparameters(loss)
  return {k: v for k, v in cfg.items() if k in accepted}


# Each configuration's hyperparameters, for the report and the figure labels.
ADVANTAGE_DEFAULTS = {name: configuration(name)[1] for name in CONFIGURATIONS}


def clip_edges(name: str, **overrides) -> tuple[float, ...]:
  """The importance ratios at which the weight of `name` jumps (derivative undefined).

  CISPO's, DPPO's and TOPR's weights are continuous in rho (DPPO's trust
  region jumps in pi - mu, found by `dppo_kept` on both sides alike); SAPO,
  GPG, DRO and VESPO are smooth; KL-Cov's selection is the loss's own.
  """
  loss, cfg = configuration(name, **overrides)
  return closed_form(loss).edges(cfg)


def sapo_gate_bound(tau_g: float) -> float:
  r"""`sup_{rho > 0} 4 sigma (1 - sigma) rho` with `sigma = sigmoid(tau_g (rho - 1))`.

  The supremum of SAPO's weight per unit `|A|`, found on a fine grid and then
  refined by golden-section search; the function is unimodal in `rho`.
  """
  f = lambda r: 4.0 * r / (2.0 + math.exp(tau_g * (r - 1)) + math.exp(-tau_g * (r - 1)))  # noqa: E731
  lo, hi = 0.0, 1.0 + 60.0 / tau_g
  grid = [lo + (hi - lo) * i / 4000 for i in range(4001)]
  best = max(range(len(grid)), key=lambda i: f(grid[i]))
  a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
  golden = (math.sqrt(5) - 1) / 2
  for _ in range(80):
    c, d = b - golden * (b - a), a + golden * (b - a)
    a, b = (a, d) if f(c) > f(d) else (c, b)
  return f((a + b) / 2)


def unit_bound(name: str, sign: str, **overrides) -> tuple[float | None, str]:
  """The closed-form bound on `|dL/ds| / (|A| * agg)` for `sign`, and how it reads.

  None means unbounded: the weight grows like `e^s` without limit.
  """
  loss, cfg = configuration(name, **overrides)
  positive = sign == "positive"
  if positive and cfg["positive_nll"]:
    return None, "unbounded: the NLL's mu / N+ does not scale with |A|"
  if cfg["advantage"] == "grpo_passk" and not positive:
    return 0.0, "= 0 (only the best rollout gets credit)"
  return closed_form(loss).bound(cfg, positive)


def vespo_peak(k: float, lam: float) -> float:
  r"""`max_w phi(w) = e^lambda (k/lambda)^k e^{-k}`, at `w = k / lambda`."""
  return math.exp(lam + k * math.log(k / lam) - k)


def aggregation_factor(mask: Array, loss_agg_mode: str, dtype, norm_length=None) -> Array:
  """`d(aggregated loss)/d(token loss)` for each of verl's modes, `[B, G, T]`."""
  m = mask != 0
  seq_len = jnp.sum(m, axis=-1, keepdims=True).astype(dtype)
  n_seq = jnp.maximum(jnp.sum(seq_len > 0), 1).astype(dtype)
  if loss_agg_mode in ("token-mean", "bnpo"):
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


def advantage_weights(name: str, logp: Array, old_logp: Array, mask: Array,
                      rewards: Array, *, norm_length=None, **overrides) -> AdvantageWeights:
  r"""Closed-form per-token weights of an advantage-weighted objective, no autodiff.

  `name` is a loss of `real_jax.losses.ADVANTAGE_LOSSES` or another entry of
  `CONFIGURATIONS` (e.g. `grpo_dual_clip`); `overrides` change its
  hyperparameters. With `alpha` the aggregation factor and `rho = e^s`
  (docs/derivations.md, "Closed forms"):

  .. math::
     \frac{\partial L}{\partial s_{k,t}} = \alpha_{k,t}\,(-A_k)\,u_{k,t} + p_{k,t}

  with the weight per unit `|A|`, `u`:

  - GRPO, DAPO, Dr.GRPO, GSPO, LUSPO: :math:`\rho` where the clip is open
    (and, with the dual clip or `delta`, :math:`\rho \le c`), else 0;
  - CISPO: :math:`w = \min(\max(\rho, 1-\epsilon_{low}), 1+\epsilon_{high})`;
  - SAPO: :math:`4\sigma(x)\sigma(-x)\rho` with :math:`x = \tau_g(\rho - 1)`;
  - GMPO: the rollout's geometric-mean ratio where the token's clip is open, else 0;
  - GPG and DRO: 1; DPPO: :math:`\min(\rho, C)` inside its trust region, else 0;
  - TOPR: 1 for `A >= 0`, :math:`\min(\rho_k, 1)` for `A < 0`, `rho_k` the
    rollout's sequence ratio;
  - Clip-Cov: GRPO's, and 0 on its selected tokens; KL-Cov: :math:`\rho`;
  - VESPO: :math:`\phi(w_k) = e^{\lambda + k\log w_k - \lambda w_k}`, `w_k` the
    product of the rollout's ratios;

  and 0 where the log-ratio passes the ±`max_log_ratio` clamp (for GSPO the
  sequence score, for GMPO its clipped mean). The penalty `p`: DRO's
  :math:`\alpha\beta s`, KL-Cov's :math:`\alpha\kappa\,\mathrm{sgn}(s)` on its
  selected tokens, and VAPO's :math:`-\mu / N^+` on the tokens of rollouts
  with reward > 0.

  The advantages, DPPO's trust region and Clip-/KL-Cov's token selections are
  the loss's own tested helpers (`batch_advantages`, `dppo_kept`,
  `clip_cov_selection`, `kl_cov_selection`): they are definitions, not
  derivatives; everything that is a derivative is written out here.
  """
  loss, cfg = configuration(name, **overrides)
  form = closed_form(loss)
  m = mask != 0
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  adv = losses.batch_advantages(rewards, m, estimator=cfg["advantage"]).astype(dtype)
  a = jnp.broadcast_to(adv[..., None], m.shape)
  agg = aggregation_factor(m, form.agg_mode or cfg["loss_agg_mode"], dtype, norm_length)
  max_log_ratio = cfg.get("max_log_ratio", 20.0)  # GPG and DRO have no ratio to clamp
  s = jnp.where(m, logp - old_logp, zero)
  out = form.unit(Token(logp, old_logp, m, adv, a, s, agg, max_log_ratio, cfg))
  unit = out.unit
  clipped = jnp.zeros(m.shape, bool) if out.clipped is None else out.clipped
  penalty = jnp.zeros(m.shape, dtype) if out.penalty is None else out.penalty
  ratio = jnp.exp(s) if out.ratio is None else out.ratio
  agg = agg if out.agg is None else out.agg
  unit = jnp.where(m & (a != 0), unit, zero)
  if cfg["positive_nll"]:
    correct = m & (rewards > 0)[..., None]
    n_correct = jnp.maximum(jnp.sum(correct), 1).astype(dtype)
    penalty = penalty + jnp.where(correct, -cfg["positive_nll"] / n_correct, zero)
  token = jnp.where(m, -a * unit * agg + penalty, zero)
  edge = near_edges(ratio, clip_edges(name, **overrides), dtype) & m
  return AdvantageWeights(token, unit, clipped & m, adv, agg, jnp.where(m, ratio, zero),
                          jnp.where(m, penalty, zero), edge)


# ------------------------------------------------- one record per objective ----

# Shapes of |weight| as the own score s grows (docs/derivations.md).
DECREASING, INCREASING, ZERO, PEAKED, CONSTANT, VALLEY = -1, +1, 0, 2, 3, 4


class Token(NamedTuple):
  """What every advantage-weighted closed form reads: the batch at one point."""
  logp: Array
  old_logp: Array
  mask: Array       # bool
  advantages: Array  # [B, G]
  a: Array          # the advantages on every token, [B, G, T]
  s: Array          # the token log-ratios, 0 off the response
  agg: Array        # the aggregation factor of the configuration's mode
  max_log_ratio: float
  cfg: dict

  @property
  def zero(self):
    return jnp.zeros((), self.logp.dtype)

  @property
  def in_clamp(self):
    return jnp.abs(self.s) < self.max_log_ratio


class Unit(NamedTuple):
  """A closed form's weight per unit `|A|`, and what else it changes (None: the default)."""
  unit: Array
  clipped: Array | None = None   # default: nothing clipped
  penalty: Array | None = None   # default: 0
  ratio: Array | None = None     # default: the token ratio e^s
  agg: Array | None = None       # default: the mode's factor


@dataclasses.dataclass(frozen=True)
class ClosedForm:
  """One advantage-weighted objective's closed form, read by every part of `grad_analysis`.

  Attributes:
    unit: `unit(Token) -> Unit`, the derivative per unit `-A` (docs/derivations.md, section 6).
    bound: `bound(cfg, positive) -> (bound or None, how it reads)` on `|dL/ds| / (|A| agg)`.
    shape: `(positives, negatives)`: how `|weight|` moves as the own score `s` grows.
    zero_where: where the weight is exactly 0, in words.
    label: `label(cfg) -> str`, the figures' legend.
    edges: `edges(cfg) -> ratios` at which the weight jumps.
    agg_mode: an aggregation of its own (GMPO's mean over rollouts), else the config's.
  """
  unit: Callable[[Token], Unit]
  bound: Callable[[dict, bool], tuple[float | None, str]]
  shape: tuple[int, int]
  zero_where: str
  label: Callable[[dict], str]
  edges: Callable[[dict], tuple[float, ...]] = lambda cfg: ()
  agg_mode: str | None = None


def closed_form(loss: str) -> ClosedForm:
  """The record of advantage-weighted loss `loss`; raises for any other name."""
  try:
    return CLOSED_FORMS[loss]
  except KeyError:
    raise ValueError(f"no closed form for {loss!r}: the advantage-weighted objectives with one "
                     f"are {', '.join(CLOSED_FORMS)}.") from None


def eps_label(cfg: dict) -> str:
  """The clip range as a legend reads it."""
  low = "none" if cfg.get("epsilon_low") is None else f"{cfg['epsilon_low']:g}"
  return f"$\\epsilon$ = {low}/{cfg['epsilon_high']:g}"


# PPO's clip on a ratio, with the dual clip and delta: GRPO, DAPO, Dr.GRPO,
# GSPO, LUSPO and Clip-Cov.
def _ppo(x: Token, ratio=None, in_clamp=None, extra=None) -> Unit:
  cfg, a = x.cfg, x.a
  ratio = jnp.exp(x.s) if ratio is None else ratio
  in_clamp = x.in_clamp if in_clamp is None else in_clamp
  clipped = (((a > 0) & (ratio > 1 + cfg["epsilon_high"]))
             | ((a < 0) & (ratio < 1 - cfg["epsilon_low"])))
  if cfg["clip_ratio_c"] is not None:
    clipped = clipped | ((a < 0) & (ratio > cfg["clip_ratio_c"]))
  if cfg["delta"] is not None:
    clipped = clipped | (ratio > cfg["delta"])
  if extra is not None:
    clipped = clipped | extra
  return Unit(jnp.where(~clipped & in_clamp, ratio, x.zero), clipped, ratio=ratio)


def _sequence_ppo(x: Token) -> Unit:
  sbar = losses.sequence_scores(x.logp, x.old_logp, x.mask)[..., None]
  ratio = jnp.broadcast_to(jnp.exp(sbar), x.mask.shape)
  in_clamp = jnp.broadcast_to(jnp.abs(sbar) < x.max_log_ratio, x.mask.shape)
  seq_len = jnp.maximum(jnp.sum(x.mask, -1, keepdims=True), 1).astype(x.logp.dtype)
  # d sbar / d s_{k,t} = 1/|o_k|; every token of the rollout carries l_k.
  agg = jnp.where(x.mask, jnp.sum(x.agg, -1, keepdims=True) / seq_len, x.zero)
  return _ppo(x, ratio, in_clamp)._replace(agg=agg)


def _clip_cov(x: Token) -> Unit:
  cfg = x.cfg
  return _ppo(x, extra=losses.clip_cov_selection(
      x.logp, x.old_logp, x.mask, x.advantages, epsilon_low=cfg["epsilon_low"],
      epsilon_high=cfg["epsilon_high"], clip_cov_ratio=cfg["clip_cov_ratio"],
      clip_cov_lb=cfg["clip_cov_lb"], clip_cov_ub=cfg["clip_cov_ub"]))


def _ppo_bound(cfg: dict, positive: bool):
  caps = [c for c in (cfg["clip_ratio_c"], cfg["delta"]) if c is not None]
  if positive:
    bound = min([1 + cfg["epsilon_high"]] + caps)
    return bound, f"<= min(1 + eps_high, delta) = {bound:g}"
  if caps:
    return min(caps), f"<= {min(caps):g} (dual clip / delta)"
  return None, "unbounded (e^s)"


def _ppo_edges(cfg: dict):
  edges = (1 + cfg["epsilon_high"], 1 - cfg["epsilon_low"])
  return edges + tuple(cfg[k] for k in ("clip_ratio_c", "delta") if cfg[k] is not None)


_PPO_ZERO = ("where the clip closes: A > 0 and rho > 1 + eps_high, A < 0 and rho < 1 - eps_low"
             " (and rho > c with the dual clip)")


def _ppo_form(title: str, unit=_ppo, zero_where=_PPO_ZERO) -> ClosedForm:
  return ClosedForm(unit, _ppo_bound, (INCREASING, INCREASING), zero_where,
                    lambda cfg: f"{title} ({eps_label(cfg)})", _ppo_edges)


def _cispo(x: Token) -> Unit:
  cfg, mlr = x.cfg, x.max_log_ratio
  ratio = jnp.exp(x.s)
  w = jnp.minimum(jnp.exp(jnp.clip(x.s, -mlr, mlr)), 1 + cfg["epsilon_high"])
  clipped = ratio > 1 + cfg["epsilon_high"]
  if cfg["epsilon_low"] is not None:
    w = jnp.maximum(w, 1 - cfg["epsilon_low"])
    clipped = clipped | (ratio < 1 - cfg["epsilon_low"])
  return Unit(w, clipped)


def _cispo_label(cfg: dict) -> str:
  low = "" if cfg["epsilon_low"] is None else f", w >= {1 - cfg['epsilon_low']:g}"
  return f"CISPO (w = sg(min($\\rho$, {1 + cfg['epsilon_high']:g})){low})"


def _dppo(x: Token, divergence: str) -> Unit:
  cfg, mlr = x.cfg, x.max_log_ratio
  kept = losses.dppo_kept(jnp.where(x.mask, x.logp, x.zero), jnp.where(x.mask, x.old_logp, x.zero),
                          x.a, divergence=divergence, epsilon_low=cfg["epsilon_low"],
                          epsilon_high=cfg["epsilon_high"])
  w = jnp.minimum(jnp.exp(jnp.clip(x.s, -mlr, mlr)), cfg["tis_cap"])
  return Unit(jnp.where(kept, w, x.zero), ~kept)


def _dppo_form(kind: str) -> ClosedForm:
  return ClosedForm(
      functools.partial(_dppo, divergence=kind),
      lambda cfg, positive: (cfg["tis_cap"], f"<= C = {cfg['tis_cap']:g} (truncated IS)"),
      (INCREASING, INCREASING),
      "outside the trust region: A > 0 and the token's probability rose past the"
      " threshold (TV: pi - mu > eps_high; KL: D > eps_high), A <= 0 and it fell past it",
      lambda cfg: (f"DPPO-{'TV' if kind == 'tv' else 'binary KL'} (threshold "
                   f"{cfg['epsilon_high']:g}, C = {cfg['tis_cap']:g})"))


def _kl_cov(x: Token) -> Unit:
  cfg = x.cfg
  selected = losses.kl_cov_selection(x.logp, x.mask, x.advantages,
                                     kl_cov_ratio=cfg["kl_cov_ratio"])
  ratio = jnp.exp(x.s)
  penalty = jnp.where(selected, cfg["ppo_kl_coef"] * jnp.sign(x.s), x.zero) * x.agg
  return Unit(jnp.where(x.in_clamp, ratio, x.zero), selected, penalty)


def _dro(x: Token) -> Unit:
  return Unit(jnp.ones(x.mask.shape, x.logp.dtype), penalty=x.cfg["dro_beta"] * x.s * x.agg)


def _vespo(x: Token) -> Unit:
  cfg, mlr, dtype = x.cfg, x.max_log_ratio, x.logp.dtype
  log_w = jnp.clip(jnp.sum(jnp.clip(x.s, -mlr, mlr), -1, keepdims=True), math.log(1e-8), mlr)
  nonneg = x.a >= 0
  k = jnp.where(nonneg, cfg["k_pos"], cfg["k_neg"]).astype(dtype)
  lam = jnp.where(nonneg, cfg["lambda_pos"], cfg["lambda_neg"]).astype(dtype)
  return Unit(jnp.exp(lam + k * log_w - lam * jnp.exp(log_w)),
              ratio=jnp.broadcast_to(jnp.exp(log_w), x.mask.shape))


def _vespo_bound(cfg: dict, positive: bool):
  k, lam = (cfg["k_pos"], cfg["lambda_pos"]) if positive else (cfg["k_neg"], cfg["lambda_neg"])
  bound = vespo_peak(k, lam)
  return bound, f"<= phi(k/lambda) = {bound:.4f}"


def _sapo(x: Token) -> Unit:
  cfg = x.cfg
  ratio = jnp.exp(x.s)
  tau_g = jnp.where(x.a > 0, cfg["tau_pos"], cfg["tau_neg"]).astype(x.logp.dtype)
  z = tau_g * (ratio - 1)
  return Unit(jnp.where(x.in_clamp, 4 * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z) * ratio, x.zero))


def _sapo_bound(cfg: dict, positive: bool):
  tau_g = cfg["tau_pos"] if positive else cfg["tau_neg"]
  bound = sapo_gate_bound(tau_g)
  return bound, f"<= {bound:.4f} (gate peak, tau = {tau_g:g})"


def _gmpo(x: Token) -> Unit:
  cfg, a, m = x.cfg, x.a, x.mask
  # A token's clip is open below +eps_high for A > 0, above -eps_low for A < 0.
  clipped = (((a > 0) & (x.s > cfg["epsilon_high"]))
             | ((a < 0) & (x.s < -cfg["epsilon_low"])))
  kept = jnp.where(clipped, jnp.clip(x.s, -cfg["epsilon_low"], cfg["epsilon_high"]), x.s)
  seq_len = jnp.maximum(jnp.sum(m, -1, keepdims=True), 1).astype(x.logp.dtype)
  mean_kept = jnp.sum(jnp.where(m, kept, x.zero), -1, keepdims=True) / seq_len
  rho_geo = jnp.broadcast_to(jnp.exp(mean_kept), m.shape)
  alive = ~clipped & jnp.broadcast_to(jnp.abs(mean_kept) < x.max_log_ratio, m.shape)
  return Unit(jnp.where(alive, rho_geo, x.zero), clipped)


def _gmpo_bound(cfg: dict, positive: bool):
  if positive:
    return math.exp(cfg["epsilon_high"]), f"<= e^eps_high = {math.exp(cfg['epsilon_high']):.4f}"
  return None, "unbounded (e^mean s)"


def _ones(x: Token) -> Unit:
  return Unit(jnp.ones(x.mask.shape, x.logp.dtype))


def _topr(x: Token) -> Unit:
  # The rollout's sequence ratio, tapered for negatives only: min(rho, 1).
  log_rho = jnp.sum(x.s, -1, keepdims=True)
  ratio = jnp.broadcast_to(jnp.exp(jnp.minimum(log_rho, x.max_log_ratio)), x.mask.shape)
  return Unit(jnp.where(x.a < 0, jnp.exp(jnp.minimum(log_rho, 0.0)), jnp.ones((), x.logp.dtype)),
              ratio=ratio)


# Every shipped advantage-weighted objective, declared once: its closed form,
# bound, shape, zeros and legend.
CLOSED_FORMS: dict[str, ClosedForm] = {
    "grpo": _ppo_form("GRPO"),
    "dapo": _ppo_form("DAPO"),
    "dr_grpo": _ppo_form("Dr.GRPO"),
    "gspo": _ppo_form("GSPO", _sequence_ppo),
    "luspo": _ppo_form("LUSPO (per unit |A| and length)", _sequence_ppo),
    "clip_cov": dataclasses.replace(
        _ppo_form("Clip-Cov", _clip_cov,
                  "where PPO's clip closes, and on the few selected highest-covariance tokens"),
        label=lambda cfg: (f"Clip-Cov ({eps_label(cfg)}, c in ({cfg['clip_cov_lb']:g}, "
                           f"{cfg['clip_cov_ub']:g}))")),
    "cispo": ClosedForm(
        _cispo, lambda cfg, positive: (1 + cfg["epsilon_high"],
                                       f"<= 1 + eps_high = {1 + cfg['epsilon_high']:g}"),
        (INCREASING, INCREASING), "never", _cispo_label),
    "sapo": ClosedForm(
        _sapo, _sapo_bound, (PEAKED, PEAKED),
        "never in exact arithmetic; it decays smoothly both ways and underflows far from rho = 1",
        lambda cfg: (f"SAPO ($\\tau_{{pos}}$ = {cfg['tau_pos']:g}, $\\tau_{{neg}}$ = "
                     f"{cfg['tau_neg']:g})")),
    "gmpo": ClosedForm(
        _gmpo, _gmpo_bound, (INCREASING, INCREASING),
        "on a token whose log-ratio clip closes: A > 0 and s > eps_high, A < 0 and s < -eps_low",
        lambda cfg: f"GMPO (log-ratio clip $-${cfg['epsilon_low']:g}/+{cfg['epsilon_high']:g})",
        lambda cfg: (math.exp(cfg["epsilon_high"]), math.exp(-cfg["epsilon_low"])),
        agg_mode="seq-mean-token-mean"),
    "gpg": ClosedForm(_ones, lambda cfg, positive: (1.0, "= 1 (constant)"),
                      (CONSTANT, CONSTANT), "never", lambda cfg: "GPG ($-A \\log\\pi$)"),
    "dppo_tv": _dppo_form("tv"),
    "dppo_kl": _dppo_form("kl"),
    "kl_cov": ClosedForm(
        _kl_cov, lambda cfg, positive: (None, "unbounded (e^s, no clip)"),
        (INCREASING, INCREASING), "never (no clip); a selected token's penalty adds kappa sgn(s)",
        lambda cfg: f"KL-Cov (no clip; $\\kappa$ = {cfg['ppo_kl_coef']:g} on selected)"),
    "dro": ClosedForm(
        _dro, lambda cfg, positive: (None, "unbounded (|1 - beta s / A|)"), (VALLEY, VALLEY),
        "only at s = A / beta, where the pull cancels the push",
        lambda cfg: f"DRO ($\\beta$ = {cfg['dro_beta']:g}: $|1 - \\beta s / A|$)"),
    "vespo": ClosedForm(
        _vespo, _vespo_bound, (PEAKED, PEAKED),
        "never in exact arithmetic; phi underflows for sequence ratios far above k/lambda",
        lambda cfg: (f"VESPO (k, $\\lambda$ = {cfg['k_pos']:g}, {cfg['lambda_pos']:g} / "
                     f"{cfg['k_neg']:g}, {cfg['lambda_neg']:g})")),
    "topr": ClosedForm(
        _topr,
        lambda cfg, positive: (1.0, "= 1 (constant)" if positive
                               else "<= 1 (tapered: min(rho(o), 1))"),
        (CONSTANT, INCREASING),
        "never in exact arithmetic; a negative's min(rho(o), 1) underflows for very"
        " unlikely rollouts",
        lambda cfg: "TOPR (negatives: sg(min($\\rho(o)$, 1)))"),
}


@dataclasses.dataclass(frozen=True)
class LabelForm:
  """One label-based objective's closed form, read by every part of `grad_analysis`.

  Attributes:
    group: `group(scores, positive, negative, tau) -> LabelWeights`, one group's
      per-rollout weights `dL_g / dsbar_k` (docs/derivations.md, section 6).
    per_rollout: the batch loss is a mean over the rollouts of mixed groups
      (BCE), not a sum over groups divided by the non-empty groups.
    shape: `(positives, negatives)`: how `|weight|` moves as the own score grows.
    label: the figures' legend.
    identity: `(its name in the report, terms)` for an identity with REAL's form
      that the check measures beside the closed form, or None.
      `terms(scores, closed, auto, tau) -> (value, reference, where)`, all
      `[B, G]`, from a batch's sequence scores, its `BatchLabelWeights` and the
      autodiff weights `dL/dsbar`; the check reports the largest relative
      error of `value` against `reference` where `where` holds.
  """
  group: Callable
  per_rollout: bool
  shape: tuple[int, int]
  label: str
  identity: tuple[str, Callable] | None = None


def _grad_is_real_on_positives(scores, closed, auto, tau):
  # GRAD's seed form against REAL's C+ form, on the positives of groups with both signs.
  real = jax.vmap(lambda s, p, n: real_group_weights(s, p, n, tau))(
      scores, closed.positive, closed.negative)
  mixed = (jnp.any(closed.positive, -1) & jnp.any(closed.negative, -1))[:, None]
  return closed.group_weights, real.weights, closed.positive & mixed


def _bce_is_real_with_c_one(scores, closed, auto, tau):
  # BCE is REAL's form with C+ = C- = 1, scaled by 1/N (which the normaliser undoes).
  c_one = anchored_weight(scores, jnp.zeros((), scores.dtype), tau, closed.positive)
  return auto * closed.normaliser, c_one, closed.group_weights != 0


# Every label-based objective, declared once; all bounded by 1/tau.
LABEL_FORMS: dict[str, LabelForm] = {
    "real": LabelForm(real_group_weights, False, (DECREASING, INCREASING),
                      "REAL ($\\tau$ = 0.5, $C^\\pm$ = 4)"),
    "grad": LabelForm(grad_group_weights, False, (DECREASING, ZERO),
                      "GRAD ($\\tau$ = 0.5; = REAL on positives, 0 on negatives)",
                      ("grad_seed_form_equals_real_c_plus_form", _grad_is_real_on_positives)),
    "bce": LabelForm(bce_group_weights, True, (DECREASING, INCREASING),
                     "BCE ($\\tau$ = 0.5, $C^\\pm$ = 1)",
                     ("bce_equals_real_with_c_equal_1", _bce_is_real_with_c_one)),
    "real_product": LabelForm(real_product_group_weights, False, (DECREASING, INCREASING),
                              "product-style ($\\tau$ = 0.5)"),
}
