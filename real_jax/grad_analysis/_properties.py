"""The derivation check's stated properties and its verdicts on them.

Each objective's stated shape of |weight| against its own score, where it is
exactly zero and its bound (read from its record, `_closed_forms.CLOSED_FORMS`,
for the advantage-weighted ones), and the tests of the measured weights
against them: the tolerances, `monotonic_verdict` and `bound_verdict`.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis._cases import SIGNS

# Relative-error tolerances, applied to weights larger than TINY.
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
    return cf.LABEL_FORMS[name].shape[SIGNS.index(sign)]
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
  return name in cf.LABEL_FORMS


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


def bound_verdict(name: str, sign: str, stats: dict, dtype_name: str) -> dict:
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
