"""The derivation check's device statistics: autodiff against closed forms, chunk by chunk.

`compare_chunk` is one objective's comparison on one chunk of cases; the
errors, counts and maxima are reduced on the device (two variadic passes,
`_reduce`), so that only small tables come back to the host. On a small CPU
compiling is about 40% of a cold sweep, so every objective goes through the
same few programs per dtype (`program_groups`: one for the label-based
objectives, one for the advantage-weighted ones' weights, one for their
reductions).
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from real_jax import domination
from real_jax import losses
from real_jax.grad_analysis import _autodiff
from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis._cases import G_MAX
from real_jax.grad_analysis._cases import GROUPS_PER_CASE
from real_jax.grad_analysis._cases import SIGNS
from real_jax.grad_analysis._properties import TINY
from real_jax.grad_analysis._properties import is_label

Array = jax.Array


def _errors(auto: Array, closed: Array, terms: Array | None = None) -> tuple[Array, Array]:
  """Absolute and relative error of `auto` against `closed`, elementwise.

  The relative error divides by the larger of the two magnitudes, so a
  gradient where the closed form says 0 (a trust region the wrong way round)
  counts as an error of 1, not as nothing. Where the closed form sums terms
  of both signs (DRO's `-A + beta s`), `terms` (their magnitudes summed)
  joins the divisor: near the sum's zero, rounding is relative to the terms.
  Below `TINY` the relative error is 0.
  """
  abs_err = jnp.abs(auto - closed)
  scale = jnp.maximum(jnp.abs(closed), jnp.abs(auto))
  if terms is not None:
    scale = jnp.maximum(scale, terms)
  big = scale > TINY
  return abs_err, jnp.where(big, abs_err / jnp.where(big, scale, 1.0), 0.0)


def _error_stats(auto: Array, closed: Array, select: Array,
                 terms: Array | None = None) -> dict[str, Array]:
  """Counts, max absolute and max relative error (`_errors`) over `select`."""
  abs_err, rel_err = _errors(auto, closed, terms)
  return dict(cases=jnp.sum(select),
              max_abs_err=jnp.max(jnp.where(select, abs_err, 0.0)),
              max_rel_err=jnp.max(jnp.where(select, rel_err, 0.0)))


def _max_rel(a: Array, b: Array, where: Array) -> Array:
  big = where & (jnp.abs(b) > TINY)
  return jnp.max(jnp.where(big, jnp.abs(a - b) / jnp.where(big, jnp.abs(b), 1.0), 0.0))


def compare_chunk(name: str, logp, old_logp, mask, rewards, tau) -> dict:
  """`_compare(name, ...)` compiled for one objective (see `_compare`)."""
  return _compare_jit(name, logp, old_logp, mask, rewards, tau)


def _compare(name: str, logp, old_logp, mask, rewards, tau, with_share: bool = True) -> dict:
  """Autodiff against closed forms on a chunk of cases `[n, 4, G, T]`.

  Returns on-device reductions per sign (`cases`, `max_abs_err`,
  `max_rel_err` and the inputs of the bound checks), the domination shares,
  an `identity` error where the objective has one, and `probe_auto`,
  `probe_closed` `[n, 4]`: the weight of rollout 0 of every group, per unit
  (label objectives: before batch normalisation; clipped: per unit |A| and
  without the aggregation factor).
  """
  flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
  zero = jnp.zeros((), logp.dtype)
  out = {"identity": zero}
  if is_label(name):
    def one(lp, olp, m, r, t):
      auto = _autodiff.rollout_weights(name, lp, olp, m, r, tau=t)
      closed = cf.label_weights(name, lp, olp, m, r, tau=t)
      identity = cf.LABEL_FORMS[name].identity
      if identity is None:
        return auto, closed, zero
      return auto, closed, _max_rel(*identity[1](losses.sequence_scores(lp, olp, m), closed,
                                                 auto, t))
    auto, closed, identity = jax.vmap(one)(logp, old_logp, mask, rewards, tau)
    out["identity"] = jnp.max(identity)
    group_auto = jnp.abs(auto) * closed.normaliser[:, None, None]
    abs_err, rel_err = _errors(auto, closed.weights)
    bound = group_auto * tau[:, None, None]  # at most 1
    live = jnp.abs(closed.group_weights) > TINY
    # One variadic pass for the maxima and one for the counts, as in
    # `_advantage_stats`.
    signs = dict(zip(SIGNS, (closed.positive, closed.negative), strict=True))
    maxima = _reduce({(sign, k): jnp.where(w, x, zero) for sign, w in signs.items()
                      for k, x in (("abs_err", abs_err), ("rel_err", rel_err), ("bound", bound))},
                     jax.lax.max, zero)
    counts = _reduce({(sign, k): f.astype(jnp.int32) for sign, w in signs.items()
                      for k, f in (("cases", w), ("nonpositive", w & live & (group_auto <= 0)),
                                   ("zero", w & (auto == 0)))},
                     jax.lax.add, jnp.zeros((), jnp.int32))
    for sign in SIGNS:
      out[sign] = dict(cases=counts[sign, "cases"], max_abs_err=maxima[sign, "abs_err"],
                       max_rel_err=maxima[sign, "rel_err"],
                       bound_violation=maxima[sign, "bound"] - 1.0,
                       nonpositive=counts[sign, "nonpositive"], zero=counts[sign, "zero"])
    share, counted = domination.top_share(flat(auto), flat(closed.negative))
    out["probe_auto"] = group_auto[..., 0]
    out["probe_closed"] = jnp.abs(closed.group_weights[..., 0])
    out["probe_live"] = jnp.ones(out["probe_auto"].shape, bool)
  else:
    return _advantage_stats(*_advantage_weights(name, logp, old_logp, mask, rewards), mask,
                            with_share=with_share)
  if with_share:  # read for the first dtype only: the others skip its work
    out["share"], out["share_counted"] = share.reshape(-1), counted.reshape(-1)
  return out


_compare_jit = jax.jit(_compare, static_argnums=0, static_argnames=("with_share",))


class _Closed(NamedTuple):
  """What the statistics read of a chunk's `cf.AdvantageWeights`, and no more.

  Every token-sized output of a program is written once and read once per
  chunk; the unit weights, the ratios and a per-token copy of each
  rollout's aggregation factor were a third of the float64 weights
  program's time.

  Attributes:
    token_weights: `[n, B, G, T]` the closed form's `dL/ds`.
    terms: `[n, B, G, T]` `|A u alpha| + |penalty|`, the size of the terms the
      closed form sums (the scale of its rounding).
    agg: `[n, B, G]` each rollout's aggregation factor (the same on its tokens).
    advantages: `[n, B, G]`.
    edge: `[n, B, G, T]` bool, tokens at a jump of the weight.
    probe_clipped: `[n, B]` bool, whether the clip is active on the first
      token of each group's first rollout (the probe's).
    wrong: `[n, B, G]` bool, a wrong rollout of a group that has a right one:
      a negative sample whatever its advantage (pass@k gives it A = 0, and
      its closed form says its weight is exactly 0, which is checked).
  """
  token_weights: Array
  terms: Array
  agg: Array
  advantages: Array
  edge: Array
  probe_clipped: Array
  wrong: Array


def _advantage_weights(name: str, logp, old_logp, mask, rewards) -> tuple[Array, _Closed]:
  """Autodiff and closed-form token weights of an advantage-weighted objective on a chunk."""
  loss = cf.configuration(name)[0]
  kwargs = cf.configuration_kwargs(name)

  def one(lp, olp, m, r):
    return (_autodiff.token_gradients(loss, lp, olp, m, r, **kwargs),
            cf.advantage_weights(name, lp, olp, m, r))
  auto, closed = jax.vmap(one)(logp, old_logp, mask, rewards)
  # token_weights = -A u alpha + penalty (0 off the mask, as the penalty).
  terms = jnp.abs(closed.token_weights - closed.penalty) + jnp.abs(closed.penalty)
  terms = jnp.maximum(terms, _residue_scale(closed))
  present = jnp.any(mask, -1)
  right = present & (rewards > 0)
  wrong = present & ~right & jnp.any(right, -1, keepdims=True)
  return auto, _Closed(closed.token_weights, terms, jnp.max(closed.agg_factor, -1),
                       closed.advantages, closed.edge, closed.clipped[..., 0, 0], wrong)


# A sum of n terms rounds by up to about n ulps of its largest term; a case's
# batch holds GROUPS_PER_CASE * G_MAX = 256 rollouts.
RESIDUE_ULPS = GROUPS_PER_CASE * G_MAX


def _residue_scale(closed: cf.AdvantageWeights) -> Array:
  """The rounding scale of a token whose advantage is 0 in exact arithmetic.

  An advantage made from sums over the batch (REINFORCE++'s whitening
  subtracts the batch mean) is exact only up to the rounding of those sums:
  a group that is 0 in exact arithmetic gets about `eps * max|A|`, of either
  sign, and each side of the comparison may round it differently (on a GPU,
  XLA fused the loss's copy and the closed form's copy of the whitening
  differently, and 1e-19 against 1e-20 read as a relative error of 1). Such
  a token's error is measured against the batch's advantage scale, `alpha
  max(rho, 1) max|A|`, instead of its own vanishing weight. Every other token
  keeps its own scale.
  """
  adv = jnp.abs(closed.advantages)
  scale = jnp.max(adv, axis=(-2, -1), keepdims=True)
  eps = jnp.finfo(adv.dtype).eps
  residue = (adv <= RESIDUE_ULPS * eps * scale)[..., None]
  return jnp.where(residue, closed.agg_factor * jnp.maximum(closed.ratio, 1) * scale[..., None],
                   jnp.zeros((), adv.dtype))


def _reduce(operands: dict, op, init) -> dict:
  """`op`-reductions of same-shaped arrays over every axis, in one variadic pass, by name.

  One pass, because XLA's CPU backend runs every separate reduction as its own
  loop over the tokens. The operands are seen as `[n, rest]` first, because
  its loop over a last axis as short as the tokens' is slow
  (docs/guide/performance.md).
  """
  names = list(operands)
  reduced = jax.lax.reduce(
      tuple(operands[k].reshape(operands[k].shape[0], -1) for k in names), (init,) * len(names),
      lambda xs, ys: tuple(op(x, y) for x, y in zip(xs, ys, strict=True)), (0, 1))
  return dict(zip(names, reduced, strict=True))


def _advantage_stats(auto, closed: _Closed, mask, with_share: bool = True) -> dict:
  """The comparison's reductions, the same for every advantage-weighted objective.

  One program per dtype serves them all: compiling it per objective was half
  of each objective's compile time.
  """
  flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
  edge = closed.edge
  m = mask & ~edge
  a = closed.advantages[..., None]
  token_weights = closed.token_weights
  # |A| alpha per rollout, where the weight per unit |A| is defined.
  unit = jnp.where(a != 0, jnp.abs(a) * closed.agg[..., None], 1.0)
  unit_auto = jnp.abs(auto) / jnp.where(mask, unit, 1.0)
  abs_err, rel_err = _errors(auto, token_weights, closed.terms)
  # A wrong rollout with A = 0 (pass@k's) is a negative sample whose weight
  # must be exactly 0; the neutral tokens are the rest with A = 0.
  zero_negative = (a == 0) & closed.wrong[..., None]
  positive, negative = m & (a > 0), m & ((a < 0) | zero_negative)
  neutral = m & (a == 0) & ~zero_negative
  moving = neutral & ((token_weights != 0) | (auto != 0))
  # Two variadic reductions, one pass over the tokens each (`_reduce`): these
  # are most of the sweep's work.
  zero = jnp.zeros((), auto.dtype)
  groups = {"positive": positive, "negative": negative, "neutral": neutral}
  maxima = _reduce({(group, k): jnp.where(groups[group], x, zero) for group in groups
                    for k, x in (("abs_err", abs_err), ("rel_err", rel_err), ("unit", unit_auto))
                    if group != "neutral" or k != "unit"},
                   jax.lax.max, zero)
  edges = {"positive": edge & mask & (a > 0), "negative": edge & mask & (a < 0)}
  flags = {**{(group, "cases"): w for group, w in groups.items()},
           **{(sign, "zero"): groups[sign] & (auto == 0) for sign in SIGNS},
           **{(sign, "edge"): edges[sign] for sign in SIGNS}, ("neutral", "moving"): moving}
  counts = _reduce({k: f.astype(jnp.int32) for k, f in flags.items()}, jax.lax.add,
                   jnp.zeros((), jnp.int32))
  out = {"identity": zero}
  for sign in SIGNS:
    out[sign] = dict(cases=counts[sign, "cases"], max_abs_err=maxima[sign, "abs_err"],
                     max_rel_err=maxima[sign, "rel_err"], max_unit_weight=maxima[sign, "unit"],
                     zero=counts[sign, "zero"], edge_excluded=counts[sign, "edge"])
  out["neutral"] = dict(cases=counts["neutral", "cases"], max_abs_err=maxima["neutral", "abs_err"],
                        max_rel_err=maxima["neutral", "rel_err"], moving=counts["neutral", "moving"])
  # The probes: the first token of each group's first rollout, per unit |A|
  # and without the aggregation factor.
  out["probe_live"] = ~closed.probe_clipped
  first = mask[..., 0, 0] & (closed.advantages[..., 0] != 0)
  unit0 = jnp.where(first, unit[..., 0, 0], 1.0)
  out["probe_auto"] = jnp.where(first, jnp.abs(auto[..., 0, 0]) / unit0, 0.0)
  out["probe_closed"] = jnp.where(first, jnp.abs(token_weights[..., 0, 0]) / unit0, 0.0)
  if with_share:  # read for the first dtype only: the others skip its work
    # A sum over the (few) tokens written out: XLA's CPU reduction over a
    # last axis of 4 was slower than the rest of these statistics together.
    rollout_mass = functools.reduce(jnp.add, [jnp.abs(auto[..., t]) for t in range(auto.shape[-1])])
    negatives = jnp.any(mask, -1) & (closed.advantages < 0)
    share, counted = domination.top_share(flat(rollout_mass), flat(negatives))
    out["share"], out["share_counted"] = share.reshape(-1), counted.reshape(-1)
  return out


_advantage_stats_jit = jax.jit(_advantage_stats, static_argnames=("with_share",))


def _many_weights(names: tuple[str, ...], logp, old_logp, mask, rewards) -> tuple:
  return tuple(_advantage_weights(n, logp, old_logp, mask, rewards) for n in names)


_many_weights_jit = jax.jit(_many_weights, static_argnums=0)


def _many_compare(names: tuple[str, ...], logp, old_logp, mask, rewards, tau,
                  with_share: bool) -> dict:
  return {n: _compare(n, logp, old_logp, mask, rewards, tau, with_share) for n in names}


_many_compare_jit = jax.jit(_many_compare, static_argnums=(0, 6))


def _lower(names: tuple[str, ...], batch: dict, with_share: bool) -> Callable[[], Callable]:
  """`_compare` of `names` traced and lowered for batches shaped like `batch`.

  Returns `finish()`, which compiles the lowered programs and returns
  `f(**batch) -> {name: comparison}`. Tracing is Python and holds the GIL;
  compiling is XLA's and does not, so the two run on different threads.
  Objectives of one kind share a program (XLA then compiles what they have in
  common once: the masks, the advantages, the ratios, the sequence scores).
  For the label-based ones it is `_compare` itself; for the advantage-weighted
  ones it computes their weights, and the reductions are `_advantage_stats`,
  one program per dtype for all of them.
  """
  if all(is_label(n) for n in names):
    return _many_compare_jit.lower(names, **batch, with_share=with_share).compile
  args = (batch["logp"], batch["old_logp"], batch["mask"], batch["rewards"])
  lowered = _many_weights_jit.lower(names, *args)
  auto, closed = jax.eval_shape(functools.partial(_advantage_weights, names[0]), *args)
  lowered_stats = _advantage_stats_jit.lower(auto, closed, batch["mask"], with_share=with_share)

  def finish():
    weights, stats = lowered.compile(), lowered_stats.compile()

    def compare(logp, old_logp, mask, rewards, tau):
      del tau
      return {name: stats(auto, closed, mask)
              for name, (auto, closed) in zip(names, weights(logp, old_logp, mask, rewards),
                                              strict=True)}
    return compare
  return finish


def program_groups(objectives) -> list[tuple[str, ...]]:
  """The programs a sweep compiles: one for the label-based objectives, one for
  the advantage-weighted ones (measured cold on 2 cores, 23 configurations:
  one program each 109 s, six to a program 88 s, all in one 84 s)."""
  labels = tuple(n for n in objectives if is_label(n))
  rest = tuple(n for n in objectives if not is_label(n))
  return [g for g in (labels, rest) if g]
