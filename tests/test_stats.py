"""The study statistics against hand computations, brute force and simulated coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from real_jax.reporting import stats


def _brute_sign_flip(d) -> float:
  d = np.asarray(d, np.float64)
  observed = abs(d.sum())
  sums = [abs(np.dot(s, d)) for s in itertools.product((1.0, -1.0), repeat=d.size)]
  return float(np.mean([x >= observed - 1e-12 for x in sums]))


class TestTInterval:

  def test_by_hand(self):
    # n = 5: t_{0.975, 4} = 2.7764451; sd of 1..5 is sqrt(2.5).
    mean, lo, hi = stats.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0
    np.testing.assert_allclose([lo, hi], [3 - half, 3 + half], rtol=1e-12)
    # A 90% interval is narrower; None entries are dropped; one value has no interval.
    assert stats.t_interval([1, 2, 3, 4, 5], 0.9)[2] < hi
    assert stats.t_interval([1, None, 2, 3, 4, 5]) == (mean, lo, hi)
    one = stats.t_interval([0.25])
    assert one[0] == 0.25 and math.isnan(one[1]) and math.isnan(one[2])

  @pytest.mark.parametrize("bad, match", [([], "empty"), ([1.0, float("nan")], "non-finite"),
                                          ([[1.0, 2.0]], "flat sequence")])
  def test_bad_values(self, bad, match):
    with pytest.raises(ValueError, match=match):
      stats.t_interval(bad)

  def test_bad_confidence(self):
    with pytest.raises(ValueError, match="`confidence` must be in"):
      stats.t_interval([1.0, 2.0], 1.0)


class TestSignFlip:

  @pytest.mark.parametrize("n", [1, 2, 5, 9, 15])
  def test_against_brute_force(self, n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.4, 1.0, n)
    assert stats.sign_flip_p(d) == pytest.approx(_brute_sign_flip(d), abs=1e-15)

  def test_ties_and_zeros_count_as_extreme(self):
    # Equal magnitudes: every pattern with as many + as - ... the observed sum 4
    # is reached by 1 pattern of 16 in each direction.
    assert stats.sign_flip_p([1.0, 1.0, 1.0, 1.0]) == 2 / 16
    # A zero difference doubles every pattern: p unchanged.
    assert stats.sign_flip_p([1.0, 1.0, 1.0, 1.0, 0.0]) == 2 / 16
    assert stats.sign_flip_p([0.0, 0.0]) == 1.0
    # Sums equal up to rounding (0.1 + 0.2 against 0.3) are ties, not misses.
    assert stats.sign_flip_p([0.1, 0.2, -0.3]) == _brute_sign_flip([0.1, 0.2, -0.3]) == 1.0

  def test_five_pairs_cannot_reach_005(self):
    assert stats.sign_flip_p([0.01, 0.02, 0.03, 0.04, 0.05]) == 0.0625
    assert stats.sign_flip_p(np.arange(1, 21) / 100) == 2 / 2 ** 20

  def test_drawn_patterns_beyond_the_exact_limit(self, monkeypatch):
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, 12)
    exact = stats.sign_flip_p(d)
    monkeypatch.setattr(stats, "EXACT_MAX_PAIRS", 10)
    drawn = stats.sign_flip_p(d)
    assert drawn != exact and drawn == pytest.approx(exact, abs=0.01)
    assert stats.sign_flip_p(d, seed=1) != drawn  # the draw depends on the seed

  def test_size_under_the_null(self):
    # Symmetric differences, 8 pairs: rejected at 0.05 in at most 5% (+ noise) of samples.
    rng = np.random.default_rng(0)
    rejected = np.mean([stats.sign_flip_p(rng.standard_t(3, 8)) <= 0.05 for _ in range(1500)])
    assert 0.02 < rejected < 0.065


class TestHolm:

  def test_by_hand(self):
    assert stats.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == {"a": 0.03, "b": 0.06, "c": 0.06}
    assert stats.holm({"x": 0.2}) == {"x": 0.2}
    assert stats.holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
    assert stats.holm({}) == {}

  def test_rejects_what_the_sequential_procedure_rejects(self):
    rng = np.random.default_rng(1)
    for _ in range(200):
      p = dict(zip("abcdefg", rng.uniform(0, 0.1, 7) ** rng.uniform(0.5, 2), strict=True))
      adjusted = stats.holm(p)
      # Holm's procedure: walk up the sorted p's, reject while p_(k) <= alpha / (m - k).
      rejected, m = set(), len(p)
      for k, key in enumerate(sorted(p, key=p.get)):
        if p[key] > 0.05 / (m - k):
          break
        rejected.add(key)
      assert {k for k, v in adjusted.items() if v <= 0.05} == rejected
      assert all(adjusted[k] >= p[k] for k in p)

  def test_bad_p(self):
    with pytest.raises(ValueError, match="p-value of 'a' must be in"):
      stats.holm({"a": 1.5})


def test_coverage_on_simulated_data():
  # Five seeds, as the committed studies: the t interval covers the true mean
  # about 95% of the time, the percentile bootstrap visibly less.
  rng = np.random.default_rng(0)
  reps, n = 3000, 5
  samples = rng.normal(0.0, 1.0, (reps, n))
  t_cover = np.mean([lo <= 0.0 <= hi for _, lo, hi in map(stats.t_interval, samples)])
  boot_cover = np.mean([lo <= 0.0 <= hi for lo, hi in
                        (stats.bootstrap_interval(s, samples=2000, seed=i)
                         for i, s in enumerate(samples))])
  assert 0.935 < t_cover < 0.965
  assert boot_cover < 0.91 < t_cover


def test_paired():
  out = stats.paired([0.5, 0.6, 0.7], [0.4, 0.4, 0.4])
  mean, lo, hi = stats.t_interval([0.1, 0.2, 0.3])
  assert out == pytest.approx({"mean": mean, "lo": lo, "hi": hi, "p": 0.25, "n": 3})
  with pytest.raises(ValueError, match="differ in length"):
    stats.paired([1.0], [1.0, 2.0])
