"""The randomized sweep: autodiff against closed forms, and the measured properties.

Cases are drawn by NumPy (`make_cases`), compared in jitted chunks and
reduced on the device; only small tables come back to the host.

A sweep case is a batch of `GROUPS_PER_CASE` groups (so the batch
normalisation across groups is exercised), each of up to `G_MAX` rollouts of
up to `T_MAX` tokens, with its own temperature and score scale.

On a small CPU compiling is about 40% of a cold sweep, so every measurement
goes through the same few programs per dtype (`program_groups`: one for the
label-based objectives, one for the advantage-weighted ones' weights, one for
their reductions): the monotonicity grids, the Figure 1 curves and the
identities between objectives ride in extra chunks of "probe" groups, in
which one rollout's score moves along a grid while the rest of its group
stays fixed. `compare_chunk` is one objective's comparison on one chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import concurrent.futures
import dataclasses
import functools
import math
import threading
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from real_jax import domination
from real_jax import losses
from real_jax.grad_analysis import _autodiff
from real_jax.grad_analysis import _closed_forms as cf

Array = jax.Array

# The label-based objectives, then every advantage-weighted configuration
# (each registered loss, plus dual-clip GRPO and GRPO with RLOO advantages).
OBJECTIVES = tuple(losses.LABEL_LOSSES) + tuple(cf.CONFIGURATIONS)
SIGNS = ("positive", "negative")
GROUPS_PER_CASE = 4
G_MIN, G_MAX = 2, 64
T_MAX = 4
TAU_RANGE = (0.05, 2.0)
SCORE_MAX = 20.0
# Relative-error tolerances (issue 3), applied to weights larger than TINY.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}
TINY = 1e-30
# Tokens this close (relatively) to a clip edge have an undefined derivative
# and are left out of the comparison; their number is reported.
EDGE_BAND = cf.EDGE_BAND
# Shapes of |weight| as the own score s_k grows (docs/derivations.md); each
# advantage-weighted objective states its own in its record (`cf.CLOSED_FORMS`).
DECREASING, INCREASING, ZERO, PEAKED, CONSTANT, VALLEY = (
    cf.DECREASING, cf.INCREASING, cf.ZERO, cf.PEAKED, cf.CONSTANT, cf.VALLEY)
DIRECTION_WORDS = {DECREASING: "decreasing in s", INCREASING: "increasing in s",
                   ZERO: "identically 0", PEAKED: "peaked (rises, then falls)",
                   CONSTANT: "constant in s",
                   VALLEY: "V-shaped (falls to 0 at s = A/beta, then rises)"}
# Where the weight is exactly zero beyond what an objective's record says:
# the label-based objectives, and pass@k's credit, an estimator's.
ZERO_WHERE = {
    "label": "only in groups without both classes, which carry no loss (GRAD: every negative)",
    "passk": "on every rollout but the group's single best (pass@k credit)",
}


def direction(name: str, sign: str) -> int:
  """The stated shape of |weight| against s for objective `name` and `sign`."""
  if is_label(name):
    if name == "grad" and sign == "negative":
      return ZERO
    return DECREASING if sign == "positive" else INCREASING
  loss, cfg = cf.configuration(name)
  if cfg["advantage"] == "grpo_passk" and sign == "negative":
    return ZERO
  return cf.closed_form(loss).shape[SIGNS.index(sign)]


def zero_where(name: str) -> str:
  if is_label(name):
    return ZERO_WHERE["label"]
  loss, cfg = cf.configuration(name)
  if cfg["advantage"] == "grpo_passk":
    return ZERO_WHERE["passk"]
  return cf.closed_form(loss).zero_where


def is_label(name: str) -> bool:
  return name in losses.LABEL_LOSSES


# ------------------------------------------------------------------ cases ----


def case_rng(seed: int, index: int) -> np.random.Generator:
  """The generator of chunk `index` of a sweep seeded `seed`: chunks are independent."""
  return np.random.default_rng((seed, index))


def make_cases(rng: np.random.Generator, n: int, dtype) -> dict[str, Array]:
  """`n` sweep cases: `logp, old_logp, mask: [n, 4, G_MAX, T_MAX]`, rewards, tau.

  Drawn by NumPy on the host and put on the default device: a case's values
  need no device, and `jax.random`'s threefry costs a compile per dtype and
  is slower per chunk on a CPU (docs/guide/performance.md).
  """
  dtype = np.dtype(dtype)
  shape = (n, GROUPS_PER_CASE, G_MAX)
  size = rng.integers(G_MIN, G_MAX + 1, shape[:2] + (1,))
  present = np.arange(G_MAX) < size
  present &= rng.random(shape, np.float32) > 0.1  # padding rollouts anywhere
  lengths = rng.integers(1, T_MAX + 1, shape)
  mask = (np.arange(T_MAX) < lengths[..., None]) & present[..., None]
  # Every mix: a per-group rate of correct answers, plus one-sided groups.
  rate = rng.random(shape[:2] + (1,))
  kind = rng.integers(0, 6, shape[:2] + (1,))
  correct = rng.random(shape, np.float32) < rate
  correct = np.where(kind == 0, True, np.where(kind == 1, False, correct))
  log_uniform = lambda lo, hi: np.exp(rng.uniform(math.log(lo), math.log(hi), n))  # noqa: E731
  tau = log_uniform(*TAU_RANGE)
  scale = log_uniform(0.01, SCORE_MAX)
  sbar = scale[:, None, None] * rng.uniform(-1.0, 1.0, shape)
  spread = 0.3 * np.minimum(scale, 1.0)[:, None, None, None]
  s = sbar[..., None] + spread * rng.standard_normal(shape + (T_MAX,), np.float32)
  s = np.clip(s, -SCORE_MAX + 0.1, SCORE_MAX - 0.1)
  old = -2.0 + 0.5 * rng.standard_normal(shape + (T_MAX,), np.float32)
  logp = np.where(mask, old + s, np.nan)  # garbage where masked, on purpose
  cases = dict(logp=logp, old_logp=old, rewards=correct, tau=tau)
  cases = {k: jnp.asarray(v.astype(dtype)) for k, v in cases.items()}
  return dict(cases, mask=jnp.asarray(mask))


# ------------------------------------------------------------ comparison ----


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


def _error_stats(auto: Array, closed: Array, select: Array) -> dict[str, Array]:
  """Counts, max absolute and max relative error (`_errors`) over `select`."""
  abs_err, rel_err = _errors(auto, closed)
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
      if name == "grad":  # the seed form against REAL's C+ form
        real = cf.label_weights("real", lp, olp, m, r, tau=t)
        valid = (jnp.any(real.positive, -1) & jnp.any(real.negative, -1))[:, None]
        identity = _max_rel(closed.group_weights, real.group_weights, real.positive & valid)
      elif name == "bce":  # BCE is REAL's form with C+ = C- = 1, scaled by 1/N
        scores = losses.sequence_scores(lp, olp, m)
        c_one = cf.anchored_weight(scores, zero, t, closed.positive)
        identity = _max_rel(auto * closed.normaliser, c_one, closed.group_weights != 0)
      else:
        identity = zero
      return auto, closed, identity
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


# ---------------------------------------------------------------- probes ----


@dataclasses.dataclass(frozen=True)
class Curve:
  """One probe rollout (index 0) moved along `grid` in a fixed group of 8.

  `others` are the scores of the 7 other one-token rollouts, `correct` their
  labels, `probe_correct` the probe's label.
  """
  grid: tuple
  others: tuple
  correct: tuple
  probe_correct: bool
  tau: float


def cases_needed(curves: list[Curve]) -> int:
  return sum(-(-len(c.grid) // GROUPS_PER_CASE) for c in curves)


def curves_batch(curves: list[Curve], n_cases: int, dtype) -> tuple[dict, list[tuple[int, int]]]:
  """Lays curves out as sweep cases; returns the batch and each curve's (first group, length).

  The 4 groups of a case share the case's tau, so a curve takes whole cases.
  """
  n_groups = n_cases * GROUPS_PER_CASE
  logp = np.full((n_groups, G_MAX, T_MAX), np.nan)
  old = np.zeros((n_groups, G_MAX, T_MAX))
  mask = np.zeros((n_groups, G_MAX, T_MAX), bool)
  rewards = np.zeros((n_groups, G_MAX))
  tau = np.ones(n_cases)
  spans, g = [], 0
  for c in curves:
    size = len(c.grid)
    padded = -(-size // GROUPS_PER_CASE) * GROUPS_PER_CASE
    if g + padded > n_groups:
      raise ValueError(f"`curves` need more than n_cases={n_cases} cases.")
    for i in range(padded):
      row = g + i
      logp[row, :8, 0] = (c.grid[min(i, size - 1)],) + tuple(c.others)
      mask[row, :8, 0] = True
      rewards[row, :8] = (float(c.probe_correct),) + tuple(map(float, c.correct))
    tau[g // GROUPS_PER_CASE:(g + padded) // GROUPS_PER_CASE] = c.tau
    spans.append((g, size))
    g += padded
  shape = (n_cases, GROUPS_PER_CASE)
  batch = dict(logp=logp.reshape(shape + logp.shape[1:]), old_logp=old.reshape(shape + old.shape[1:]),
               mask=mask.reshape(shape + mask.shape[1:]), rewards=rewards.reshape(shape + (G_MAX,)),
               tau=tau)
  return {k: jnp.asarray(v, dtype) if k != "mask" else jnp.asarray(v) for k, v in batch.items()}, spans


CHUNK = 256  # sweep cases per compiled call: small buffers stay in cache
# Threads that run each compiled program's chunks: two keep a small CPU's
# cores busy while one thread waits on the host (docs/guide/performance.md).
RUNNERS = 2


def batch_shape(chunk: int, dtype) -> dict[str, jax.ShapeDtypeStruct]:
  """The shapes of a batch from `chunk_batches`, to compile for before any exists."""
  dtype = jnp.dtype(dtype)
  tokens = (chunk, GROUPS_PER_CASE, G_MAX, T_MAX)
  return dict(logp=jax.ShapeDtypeStruct(tokens, dtype), old_logp=jax.ShapeDtypeStruct(tokens, dtype),
              mask=jax.ShapeDtypeStruct(tokens, jnp.bool_),
              rewards=jax.ShapeDtypeStruct(tokens[:3], dtype), tau=jax.ShapeDtypeStruct((chunk,), dtype))


def chunk_batches(seed: int, n_chunks: int, chunk: int, dtype, probes: list[Curve], *,
                  probes_first: bool = False
                  ) -> tuple[list[tuple[int, int]], Iterator[tuple[int, bool, dict]]]:
  """The batches of a check, every one `chunk` cases wide.

  `n_chunks` chunks of random cases (chunk `c` from `case_rng(seed, c)`),
  indexed `0 .. n_chunks - 1`, then the `probes` curves laid out in as many
  chunks as they need, indexed on from `n_chunks` (yielded before the random
  ones with `probes_first`): one shape throughout, so each objective and
  dtype compiles one program.

  Returns:
    Each probe curve's `(first group, length)` in the probe chunks joined
    end to end, and an iterator of `(index, is_probe, batch)`.
  """
  n_probe = math.ceil(cases_needed(probes) / chunk)
  probe_batch, spans = curves_batch(probes, n_probe * chunk, dtype)
  order = list(range(n_chunks + n_probe))
  if probes_first:
    order = order[n_chunks:] + order[:n_chunks]

  def batches():
    for c in order:
      if c < n_chunks:
        yield c, False, make_cases(case_rng(seed, c), chunk, dtype)
      else:
        piece = slice((c - n_chunks) * chunk, (c - n_chunks + 1) * chunk)
        yield c, True, {k: v[piece] for k, v in probe_batch.items()}
  return spans, batches()


def run_curves(name: str, curves: list[Curve], dtype, chunk: int = CHUNK) -> list[tuple]:
  """`(grid, autodiff |W|, closed-form |W|)` for each curve, through `compare_chunk`.

  The curves are laid out in chunks of `chunk` cases, the command's shape, so
  its compiled program is reused.
  """
  n = math.ceil(cases_needed(curves) / chunk)
  batch, spans = curves_batch(curves, n * chunk, dtype)
  auto, closed = [], []
  for i in range(n):
    out = compare_chunk(name, **{k: v[i * chunk:(i + 1) * chunk] for k, v in batch.items()})
    auto.append(np.asarray(out["probe_auto"], np.float64).reshape(-1))
    closed.append(np.asarray(out["probe_closed"], np.float64).reshape(-1))
  auto, closed = np.concatenate(auto), np.concatenate(closed)
  return [(np.asarray(c.grid), auto[g:g + size], closed[g:g + size])
          for c, (g, size) in zip(curves, spans, strict=True)]


GRID_CONFIGS, GRID_POINTS = 16, 201


def monotonic_curves(seed: int = 0) -> list[Curve]:
  """Random mixed groups, tau in [0.05, 2]; one positive and one negative probe each."""
  rng = np.random.default_rng(seed)
  grid = tuple(np.linspace(-SCORE_MAX + 0.1, SCORE_MAX - 0.1, GRID_POINTS))
  curves = []
  for i in range(GRID_CONFIGS):
    others = tuple(rng.uniform(-3.0, 3.0, 7))
    correct = (True, False) + tuple(rng.uniform(size=5) < 0.5)  # always mixed
    tau = float(np.exp(rng.uniform(math.log(TAU_RANGE[0]), math.log(TAU_RANGE[1]))))
    # One positive probe in four is its group's only correct rollout, the one
    # case where pass@k gives credit.
    sole = (False,) * 7 if i % 4 == 3 else correct
    curves.append(Curve(grid, others, sole, True, tau))
    curves.append(Curve(grid, others, correct, False, tau))
  return curves


def _moves(auto: np.ndarray, closed: np.ndarray, sense: int, eps: float) -> tuple[bool, bool]:
  """(never against `sense` beyond rounding, strictly with it wherever resolvable; any resolvable)."""
  live = closed > 0
  step_live = live[..., 1:] & live[..., :-1]
  d_auto = sense * np.diff(auto, axis=-1)
  d_closed = sense * np.diff(closed, axis=-1)
  scale = np.maximum(np.abs(auto[..., 1:]), np.abs(auto[..., :-1]))
  no_reversal = np.all((d_auto >= -8 * eps * scale) | ~step_live)
  # In the saturated tails (|W| -> 1/tau or -> 0) the change per step is
  # below rounding and neither side can resolve it.
  resolvable = step_live & (d_closed > math.sqrt(eps) * scale) & (scale > TINY)
  strict = np.all((d_auto > 0) | ~resolvable)
  return bool(no_reversal and strict), bool(np.any(resolvable))


def monotonic_verdict(name: str, sign: str, auto: np.ndarray, closed: np.ndarray, dtype,
                      live: np.ndarray | None = None) -> dict:
  """Whether |weight| along the grid (`[C, S]`) has the shape the closed form states.

  Monotonic: |weight| never moves against the stated direction beyond
  rounding, moves in it strictly at every grid step where the closed form
  changes by more than sqrt(eps) relative (and |weight| > 1e-30), and changes
  overall; for clipped objectives only the open stretch counts. Peaked:
  monotonic increasing up to the closed form's maximum and decreasing after
  it. V-shaped: the mirror image, about the closed form's minimum. Constant:
  equal to the first live point to 8 ulp. Identically 0: all 0. `live`
  (default: everywhere) marks the grid points where the shape is stated:
  outside a clip, a trust region or a token selection, where a penalty or
  the closed form's own 0 takes over.
  """
  shape = direction(name, sign)
  if live is not None:
    auto, closed = np.where(live, auto, 0.0), np.where(live, closed, 0.0)
  eps = float(jnp.finfo(dtype).eps)
  out = dict(direction=DIRECTION_WORDS[shape], max_weight=float(auto.max()))
  if shape == ZERO:
    return dict(out, monotonic=bool(np.all(auto == 0)))
  if shape == CONSTANT:
    live = closed > 0
    ref = np.where(live, auto, np.nan)[:, :1] if live[:, 0].all() else np.nanmax(
        np.where(live, auto, np.nan), axis=1, keepdims=True)
    ok = np.all(~live | (np.abs(auto - ref) <= 8 * eps * np.abs(ref)))
    return dict(out, monotonic=bool(ok and live.any()))
  if shape in (PEAKED, VALLEY):
    first = +1 if shape == PEAKED else -1
    ok, any_change = True, False
    for a_row, c_row in zip(auto, closed, strict=True):
      turn = int(np.argmax(c_row) if shape == PEAKED else np.argmin(np.where(c_row > 0, c_row,
                                                                             np.inf)))
      up_ok, up_any = _moves(a_row[:turn + 1], c_row[:turn + 1], first, eps)
      down_ok, down_any = _moves(a_row[turn:], c_row[turn:], -first, eps)
      ok &= up_ok and down_ok
      any_change |= up_any and down_any
    return dict(out, monotonic=bool(ok and any_change))
  ok, any_change = _moves(auto, closed, shape, eps)
  return dict(out, monotonic=bool(ok and any_change))


# Figure 1 of the paper: a group of 8 split 4/4, on-policy apart from the
# probe, so that C+ = C- = 4; tau = 0.5; GRPO with |A| = 1, eps = 0.2.
FIG1_TAU = 0.5
FIG1_S = (-1.5, 1.5)
FIG1_POINTS = 401


def figure1_probes() -> dict[str, Curve]:
  grid = tuple(np.linspace(*FIG1_S, FIG1_POINTS))
  return {sign: Curve(grid, (0.0,) * 7, (probe,) * 3 + (not probe,) * 4, probe, FIG1_TAU)
          for sign, probe in (("positive", True), ("negative", False))}


# ------------------------------------------------------------------ sweep ----


@dataclasses.dataclass
class SweepResult:
  table: dict        # table[objective][sign][dtype] -> stats
  properties: dict   # properties[objective][sign][dtype] -> bounded, monotonic, ...
  domination: dict   # domination[objective] -> share statistics (first dtype)
  identities: dict   # name -> max relative error (last dtype)
  figure_curves: dict  # figure_curves[objective][sign] -> (s, autodiff, closed), last dtype
  seconds: float
  # neutral[objective][dtype] -> error stats of the tokens with A = 0, which
  # only a penalty moves (objectives with such tokens moving only)
  neutral: dict = dataclasses.field(default_factory=dict)

  @property
  def passed(self) -> bool:
    """Every comparison within its tolerance, the tokens with A = 0 included."""
    return (all(r["passed"] for by_sign in self.table.values()
                for by_dtype in by_sign.values() for r in by_dtype.values())
            and all(r["passed"] for by_dtype in self.neutral.values() for r in by_dtype.values()))


def _merge(acc: dict | None, new: dict) -> dict:
  new = {k: float(v) for k, v in new.items()}
  if acc is None:
    return new
  return {k: acc[k] + v if k in ("cases", "nonpositive", "zero", "edge_excluded", "moving")
          else max(acc[k], v) for k, v in new.items()}


def _with_default_device(fn: Callable, device) -> Callable:
  """`fn` run under `jax.default_device(device)` (as it is, for None)."""
  if device is None:
    return fn

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.default_device(device):
      return fn(*args, **kwargs)
  return wrapped


def _figure_curves(probe_out: dict, dtype_name: str, spans: list[tuple[int, int]],
                   fig: dict[str, Curve], first: int, objectives) -> dict:
  """figure_curves[objective][sign] -> (s, autodiff, closed) of `dtype_name`'s
  probe chunks; the figure's curves start at curve number `first`."""
  curves = {}
  for name in objectives:
    auto, closed, _ = probe_out[(dtype_name, name)]
    curves[name] = {}
    for k, s in enumerate(SIGNS):
      g, n = spans[first + k]
      curves[name][s] = (np.asarray(fig[s].grid), auto[g:g + n], closed[g:g + n])
  return curves


def run_sweep(cases: int, dtypes: tuple[str, ...], *, seed: int = 0,
              chunk: int = CHUNK, objectives=OBJECTIVES,
              progress: Callable[[str], None] = print,
              on_figure_curves: Callable[[dict], None] | None = None) -> SweepResult:
  """Runs `cases` random groups per dtype through every objective, and the probes.

  Each program runs the probes first, so `on_figure_curves(figure_curves)`
  (the result's `figure_curves`) is called as soon as the last dtype's are
  in, on a thread of its own beside the rest of the sweep: the command
  draws its figures there while the random cases still run. The sweep
  returns when it has returned, and raises what it raises.
  """
  start = time.perf_counter()
  n_cases = max(1, math.ceil(cases / GROUPS_PER_CASE))
  n_chunks = math.ceil(n_cases / chunk)
  mono = monotonic_curves(seed)
  fig = figure1_probes()
  probe_spans = {}    # dtype -> each probe curve's (first group, length)
  probe_parts = {}    # (dtype, name) -> {chunk: (autodiff, closed form, live)}
  acc = {}
  neutral = {}        # (name, dtype) -> error stats of the tokens with A = 0
  shares = {name: {} for name in objectives}  # name -> {chunk: shares}
  identities = {}
  lock = threading.Lock()
  probes = mono + list(fig.values())
  n_probe_chunks = math.ceil(cases_needed(probes) / chunk)
  last_chunk = n_chunks + n_probe_chunks - 1

  def collect(dtype_name, c, probe, outs):
    outs = jax.device_get(outs)
    with lock:
      for name, out in outs.items():
        if probe:
          probe_parts.setdefault((dtype_name, name), {})[c] = tuple(
              np.asarray(out[k]).reshape(-1) for k in ("probe_auto", "probe_closed", "probe_live"))
        for s in SIGNS:
          acc[(name, s, dtype_name)] = _merge(acc.get((name, s, dtype_name)), out[s])
        if "neutral" in out:
          neutral[(name, dtype_name)] = _merge(neutral.get((name, dtype_name)), out["neutral"])
        if name in ("grad", "bce"):
          identities[(name, dtype_name)] = max(identities.get((name, dtype_name), 0.0),
                                               float(out["identity"]))
        if dtype_name == dtypes[0] and not probe:
          counted = np.asarray(out["share_counted"])
          shares[name][c] = np.asarray(out["share"], np.float64)[counted]

  def joined(parts: dict) -> tuple:  # {chunk: arrays} -> arrays joined in chunk order
    return tuple(np.concatenate(x) for x in zip(*(parts[c] for c in sorted(parts)), strict=True))

  # The probes ride in extra chunks of the same shape, so each program is
  # compiled once per dtype. Compiling is most of a cold run on a small CPU,
  # so nothing waits for all of it: one thread traces and lowers the
  # programs (Python, holding the GIL) in the order they are first needed,
  # a second compiles them (XLA, about 1.7 of 2 cores; two compilations at
  # once only slowed the first), and each program runs its chunks on
  # `RUNNERS` threads as soon as it is compiled, the two dtypes side by side.
  # Dispatch is asynchronous: a thread queues its next chunk before it
  # fetches the results of the one before.
  groups = program_groups(objectives)
  lowerer = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  runners = concurrent.futures.ThreadPoolExecutor(
      max_workers=len(groups) * len(dtypes) * RUNNERS)
  # The caller's default device (`jax.default_device`, a setting of its
  # thread) holds on every thread: where the programs compile and run.
  device = jax.config.jax_default_device
  on_device = lambda fn: _with_default_device(fn, device)  # noqa: E731
  drawer = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  drawn = []          # the future of on_figure_curves
  probes_in = set()   # (program, chunk) of the last dtype's probe chunks collected
  programs, feeds = {}, {}
  for d in dtypes:
    for names in groups:
      lowered = lowerer.submit(on_device(_lower), names, batch_shape(chunk, d), d == dtypes[0])
      programs[(d, names)] = compiler.submit(on_device(lambda lowered=lowered: lowered.result()()))
      # A program's runners share its batches (a generator: `next` under a lock).
      probe_spans[d], batches = chunk_batches(seed, n_chunks, chunk, jnp.dtype(d), probes,
                                              probes_first=True)
      feeds[(d, names)] = (threading.Lock(), batches)

  def run(dtype_name, names):
    program = programs[(dtype_name, names)].result()
    feed_lock, batches = feeds[(dtype_name, names)]
    pending = None
    while True:
      with feed_lock:
        c, probe, batch = next(batches, (None, None, None))
      if c is not None:
        outs = program(**batch)
      if pending is not None:
        collect(*pending)
        if pending[2]:
          probe_collected(*pending[:2], names)
      if c is None:
        return
      pending = (dtype_name, c, probe, outs)
      if names == groups[-1] and (c % 16 == 15 or c == n_chunks - 1 or c == last_chunk):
        done = min((c + 1) * chunk, n_cases) * GROUPS_PER_CASE
        what = "probe grids" if probe else f"{done:>8,d}/{n_cases * GROUPS_PER_CASE:,d} groups"
        progress(f"  [{dtype_name}] {what}  {time.perf_counter() - start:6.1f}s")

  def probe_collected(dtype_name, c, names):
    """Hands the figure's curves on once the last dtype's probe chunks are all in."""
    if on_figure_curves is None or dtype_name != dtypes[-1]:
      return
    with lock:
      probes_in.add((names, c))
      if len(probes_in) < len(groups) * n_probe_chunks:
        return
      probe_out = {(dtype_name, n): joined(probe_parts[(dtype_name, n)]) for n in objectives}
    curves = _figure_curves(probe_out, dtype_name, probe_spans[dtype_name], fig, len(mono),
                            objectives)
    drawn.append(drawer.submit(on_device(on_figure_curves), curves))

  try:
    streams = [runners.submit(on_device(run), d, names)
               for d in dtypes for names in groups for _ in range(RUNNERS)]
    for stream in concurrent.futures.as_completed(streams):
      stream.result()  # raises the first failure
    for future in drawn:
      future.result()
  finally:
    for pool in (lowerer, compiler, runners, drawer):
      pool.shutdown(wait=False, cancel_futures=True)
  probe_out = {k: joined(v) for k, v in probe_parts.items()}

  spans = probe_spans[dtypes[-1]]
  table = {name: {s: {} for s in SIGNS} for name in objectives}
  properties = {name: {s: {} for s in SIGNS} for name in objectives}
  for name in objectives:
    for s in SIGNS:
      for dtype_name in dtypes:
        stats = acc[(name, s, dtype_name)]
        stats["tolerance"] = TOLERANCE[dtype_name]
        stats["passed"] = bool(stats["max_rel_err"] <= TOLERANCE[dtype_name])
        auto, closed, live = probe_out[(dtype_name, name)]
        rows = [i for i, c in enumerate(mono) if c.probe_correct == (s == "positive")]
        grid = lambda x, rows=rows: np.stack(  # noqa: E731
            [x[spans[i][0]:spans[i][0] + spans[i][1]] for i in rows])
        props = monotonic_verdict(name, s, grid(auto), grid(closed), jnp.dtype(dtype_name),
                                  live=grid(live))
        props.update(_bounded(name, s, stats, dtype_name))
        properties[name][s][dtype_name] = props
        stats["bounded"], stats["monotonic"] = props["bounded"], props["monotonic"]
        stats["zero_fraction"] = props["zero_fraction"]
        table[name][s][dtype_name] = stats

  neutral_table = {}
  for (name, dtype_name), stats in neutral.items():
    if stats["moving"]:
      stats = dict(stats, tolerance=TOLERANCE[dtype_name],
                   passed=bool(stats["max_rel_err"] <= TOLERANCE[dtype_name]))
      neutral_table.setdefault(name, {})[dtype_name] = stats
  figure = _figure_curves(probe_out, dtypes[-1], spans, fig, len(mono), objectives)
  domination = {}
  for name in objectives:
    v = np.concatenate([shares[name][c] for c in sorted(shares[name])]) if shares[name] \
        else np.zeros(0)
    summary = lambda f, v=v: float(f(v)) if v.size else None  # noqa: E731
    domination[name] = dict(groups=int(v.size), mean=summary(np.mean), median=summary(np.median),
                            p90=summary(lambda x: np.quantile(x, 0.9)),
                            above_half=summary(lambda x: np.mean(x > 0.5)))
  last = dtypes[-1]
  identity_table = {}
  if ("grad", last) in identities:
    identity_table["grad_seed_form_equals_real_c_plus_form"] = identities[("grad", last)]
  if ("bce", last) in identities:
    identity_table["bce_equals_real_with_c_equal_1"] = identities[("bce", last)]
  return SweepResult(table, properties, domination, identity_table, figure,
                     time.perf_counter() - start, neutral_table)


def _bounded(name: str, sign: str, stats: dict, dtype_name: str) -> dict:
  """Whether the measured weights respect the closed form's bound (per unit |A| for
  the advantage-weighted objectives), and how much of each sign is exactly 0."""
  zero = dict(zero_fraction=stats["zero"] / max(stats["cases"], 1), zero_where=zero_where(name))
  if is_label(name):
    if direction(name, sign) == ZERO:  # GRAD's negatives: exactly 0
      return dict(zero, bounded=stats["zero"] == stats["cases"], bound="exactly 0")
    tol = 10 * float(jnp.finfo(jnp.dtype(dtype_name)).eps)
    ok = stats["bound_violation"] <= tol and stats["nonpositive"] == 0
    return dict(zero, bounded=bool(ok), bound="(0, 1/tau]")
  bound, text = cf.unit_bound(name, sign)
  if direction(name, sign) == ZERO:  # pass@k's negatives: exactly 0
    return dict(zero, bounded=stats["zero"] == stats["cases"], bound=text,
                max_unit_weight=stats["max_unit_weight"])
  # An unbounded weight is held to the other side's bound, which it exceeds
  # (both unbounded: it is reported as unbounded).
  reference = bound if bound is not None else cf.unit_bound(name, "positive")[0]
  bounded = reference is not None and stats["max_unit_weight"] <= reference * (1 + 1e-5)
  return dict(zero, bounded=bool(bounded), bound=text, max_unit_weight=stats["max_unit_weight"])
