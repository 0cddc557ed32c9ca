"""Comparisons of float32 results whose reductions ran in another order.

Sharding a sum over devices, or over processes, changes the order in which
float32 terms are added. Each reordered sum can move by a few ulps of the
*largest partial sums*, not of the element it lands in: a gradient entry of
1e-2 that is the difference of terms of size 1 may move by about 1e-6 times
1, which is 1e-4 of itself. A tolerance relative to each element, or a fixed
atol, is then either too tight for a correct result on another JAX version
or too loose for a small array. These helpers scale the tolerance to the
magnitude of the whole array compared.
"""

from __future__ import annotations

import numpy as np

# float32 has eps = 1.2e-7; sums over a few thousand terms reordered by
# sharding stay within ~1e-5 of the array's scale in every run we measured
# (jax 0.10.2, 0.11.2 and 0.12 on CPU); 1e-4 leaves a tenfold margin and
# still fails a wrong element that is off by 1e-3 of the scale.
SHARDED_FLOAT32_RTOL = 1e-4


def scaled_tolerance(desired, rtol: float, floor: float = 0.0) -> float:
  """`rtol` times the largest finite magnitude in `desired`, or `floor` if larger (1 if both are 0)."""
  d = np.asarray(desired, np.float64)
  finite = np.abs(d[np.isfinite(d)])
  scale = max(float(finite.max()) if finite.size else 0.0, floor)
  return rtol * (scale if scale > 0 else 1.0)


def assert_allclose_scaled(actual, desired, *, rtol: float = SHARDED_FLOAT32_RTOL,
                           floor: float = 0.0, err_msg: str = "") -> None:
  """`|actual - desired| <= rtol * max(max|desired|, floor)` elementwise; NaNs must match.

  `floor` is the magnitude of the terms when the result is their
  difference: a mean log-ratio of 1e-8 is a difference of log-probabilities
  of order 1, and moves with them.
  """
  np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(desired, np.float64),
                             rtol=0, atol=scaled_tolerance(desired, rtol, floor),
                             equal_nan=True, err_msg=err_msg)


# The derivation check's tolerances, pinned here rather than read from the library, so
# that loosening them fails the tests. float32: the closed forms and autodiff
# round differently; over 100,000 random groups per objective the largest
# relative error was 7.4e-5 (docs/grad_analysis_cpu.md). float64: 1.3e-13 there.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}
# Ratios within this relative distance of a clip edge are left out (the
# derivative jumps there); a few float32 ulps, and 1e4 float64 ulps.
EDGE_BAND = {"float32": 1e-5, "float64": 1e-12}
