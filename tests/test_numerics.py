"""The tests' float32 tolerance for reordered reductions: loose enough, and no looser."""

import jax
import jax.numpy as jnp
from numerics import assert_allclose_scaled
import numpy as np
import pytest


def sums_in_two_orders():
  """Row sums of float32 terms of size 1, added in two orders (as sharding would)."""
  rng = np.random.default_rng(0)
  terms = rng.standard_normal((256, 256)).astype(np.float32)
  terms[:, -1] -= terms.sum(-1)  # rows that nearly cancel, as gradients of a softmax do
  one_order = np.cumsum(terms, axis=-1, dtype=np.float32)[:, -1]
  four_shards = terms.reshape(256, 4, 64).sum(-1, dtype=np.float32).sum(-1, dtype=np.float32)
  return one_order, four_shards


def test_a_correct_reordering_passes_where_an_elementwise_tolerance_fails():
  ref, got = sums_in_two_orders()
  with pytest.raises(AssertionError):  # what the old rtol=1e-4, atol=1e-6 comparisons did
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
  assert_allclose_scaled(got, ref, floor=1.0)


def test_a_real_error_still_fails():
  ref, got = sums_in_two_orders()
  wrong = got.copy()
  wrong[7] += 1e-3  # one element off by 1e-3 of the terms' size
  with pytest.raises(AssertionError, match="Mismatched elements: 1 / 256"):
    assert_allclose_scaled(wrong, ref, floor=1.0)
  # Scaled to the array itself, an error of 1e-3 of its largest entry fails too.
  big = np.linspace(-3.0, 5.0, 50)
  off = big.copy()
  off[0] += 5e-3
  with pytest.raises(AssertionError):
    assert_allclose_scaled(off, big)
  assert_allclose_scaled(big + 4e-4, big)  # within 1e-4 of the scale, 5


def test_nans_must_match():
  with pytest.raises(AssertionError):
    assert_allclose_scaled([np.nan, 1.0], [0.0, 1.0])
  assert_allclose_scaled([np.nan, 1.0], [np.nan, 1.0])


@pytest.mark.xdist_group("x64_scope")  # one worker, in file order: the marked test runs first
class TestX64Scope:
  """The suite runs in JAX's default mode; `@pytest.mark.x64` is one test's setting."""

  @pytest.mark.x64
  def test_a_marked_test_computes_in_float64(self):
    assert jax.config.jax_enable_x64
    assert jnp.asarray(1.0).dtype == jnp.float64
    assert (jnp.ones(3, jnp.float64) / 3).dtype == jnp.float64

  def test_the_next_test_is_back_in_the_default_mode(self):
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(1.0).dtype == jnp.float32
    # What a user's run does with a Python float: weakly typed, float32.
    assert (jnp.ones(3) * 0.1).dtype == jnp.float32
    assert jnp.asarray(np.float64(0.1)).dtype == jnp.float32
