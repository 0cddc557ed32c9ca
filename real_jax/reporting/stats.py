r"""Intervals and tests over seeds that carry their claims at the seed counts studies afford.

  mean, lo, hi = t_interval(values)             # Student t interval of a mean
  p = sign_flip_p(differences)                   # exact paired permutation test
  adjusted = holm({"real - grpo @ 4": p, ...})   # Holm's step-down correction

A study trains 5 to 20 seeds a point. At those sizes the percentile bootstrap
of a mean undercovers (its interval is the spread of resampled means, which
is narrower than the sampling distribution when n is small: about 0.88 for
a nominal 0.95 at n = 5 on normal data; `tests/test_stats.py` measures it),
so the intervals here are Student t's, exact for normal data, and the tests
are the exact sign-flip test of paired differences, which assumes only that
a difference is as likely to be +d as -d under the null. With n pairs its
smallest p-value is 2 / 2^n: 0.0625 for 5 seeds, which is why a claim needs
more. `BOOTSTRAP` is kept for that comparison and for nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import itertools
import math

import numpy as np
from scipy import stats as scipy_stats

__all__ = ["CONFIDENCE", "EXACT_MAX_PAIRS", "t_interval", "sign_flip_p", "holm",
           "bootstrap_interval", "paired"]

CONFIDENCE = 0.95
# Up to 2^20 sign patterns are enumerated; beyond, as many are drawn at random.
EXACT_MAX_PAIRS = 20
_CHUNK_BITS = 14
_DRAWN_BLOCKS = 2 ** (20 - _CHUNK_BITS)


def _values(values, name: str = "values") -> np.ndarray:
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.ndim != 1:
    raise ValueError(f"`{name}` must be a flat sequence of numbers, got shape {v.shape}.")
  if not np.all(np.isfinite(v)):
    raise ValueError(f"`{name}` holds a non-finite value: {v[~np.isfinite(v)][:3].tolist()}.")
  return v


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
  """`(mean, lo, hi)`: the Student t `confidence` interval of the mean of `values`.

  None entries are dropped. One value has a mean but no interval (NaN bounds).

  >>> [round(x, 3) for x in t_interval([1.0, 2.0, 3.0])]
  [2.0, -0.484, 4.484]
  """
  if not 0 < confidence < 1:
    raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
  v = _values(values)
  if v.size == 0:
    raise ValueError("`values` is empty: no mean to bound.")
  mean = float(v.mean())
  if v.size == 1:
    return mean, float("nan"), float("nan")
  half = scipy_stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
  return mean, mean - float(half), mean + float(half)


def _sign_sums(d: np.ndarray, rng: np.random.Generator | None):
  """Yields blocks of `sum_i e_i d_i` over sign patterns e (all of them, or drawn)."""
  n = d.size
  if rng is None:  # every pattern: the low bits in a fixed block, the high bits looped
    low = min(n, _CHUNK_BITS)
    bits = (np.arange(2 ** low)[:, None] >> np.arange(low)) & 1
    low_sums = (1 - 2 * bits) @ d[:low]
    for high in itertools.product((1.0, -1.0), repeat=n - low):
      yield low_sums + float(np.dot(high, d[low:]))
  else:
    for _ in range(_DRAWN_BLOCKS):
      yield rng.choice((-1.0, 1.0), size=(2 ** _CHUNK_BITS, n)) @ d


def sign_flip_p(differences, *, seed: int = 0) -> float:
  """Two-sided p-value of the paired sign-flip (permutation) test of mean 0.

  The share of the `2^n` sign patterns whose `|sum|` is at least the
  observed one, the observed pattern included (so never 0). Exact for up to
  `EXACT_MAX_PAIRS` pairs; beyond, estimated from 2^20 random patterns with
  `seed`, the observed one counted once more.

  >>> sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5])   # all 5 positive: 2 of 32
  0.0625
  """
  d = _values(differences, "differences")
  if d.size == 0:
    raise ValueError("`differences` is empty.")
  observed = abs(float(d.sum()))
  # Sums equal to the observed one up to rounding count as at least as extreme.
  tol = 1e-12 * max(1.0, float(np.abs(d).sum()))
  exact = d.size <= EXACT_MAX_PAIRS
  rng = None if exact else np.random.default_rng(seed)
  hits = total = 0
  for block in _sign_sums(d, rng):
    hits += int(np.count_nonzero(np.abs(block) >= observed - tol))
    total += block.size
  return hits / total if exact else (hits + 1) / (total + 1)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
  """Holm's step-down adjusted p-values, family-wise over `pvalues`.

  The k-th smallest p (from 0) is multiplied by `m - k`, the running maximum
  taken so that the order is kept, and capped at 1.

  >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
  {'a': 0.03, 'b': 0.06, 'c': 0.06}
  """
  for key, p in pvalues.items():
    if p is None or not 0 <= p <= 1:
      raise ValueError(f"p-value of {key!r} must be in [0, 1], got {p!r}.")
  order = sorted(pvalues, key=lambda k: pvalues[k])
  m, running, out = len(order), 0.0, {}
  for k, key in enumerate(order):
    running = max(running, min(1.0, (m - k) * pvalues[key]))
    out[key] = running
  return {key: out[key] for key in pvalues}


def bootstrap_interval(values, *, samples: int = 10_000, seed: int = 0,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
  """The percentile bootstrap interval of the mean: kept to show how it undercovers."""
  v = _values(values)
  if v.size == 0:
    raise ValueError("`values` is empty.")
  rng = np.random.default_rng(seed)
  means = v[rng.integers(0, v.size, size=(samples, v.size))].mean(axis=1)
  alpha = (1 - confidence) / 2
  return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
  """`a - b` seed by seed: its mean, t interval, sign-flip p and number of pairs."""
  if len(a) != len(b):
    raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}.")
  d = _values(np.subtract(a, b), "differences")
  mean, lo, hi = t_interval(d)
  return {"mean": mean, "lo": lo, "hi": hi, "p": sign_flip_p(d), "n": int(d.size)}
