"""Rollout corrections (`real_jax.losses.rollout_correction`) against NumPy, with every loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

from real_jax import losses

CAP, KL = 2.0, 0.5


def _batch(seed=0, B=3, G=4, T=6, spread=0.6):
  """float64 logp, old_logp, behaviour_logp, mask, rewards with rho = pi_old / mu far from 1."""
  rng = np.random.default_rng(seed)
  old = -rng.uniform(0.1, 2.0, (B, G, T))
  behaviour = old + rng.normal(0.0, spread, (B, G, T))
  logp = old + rng.normal(0.0, 0.3, (B, G, T))
  lengths = rng.integers(1, T + 1, (B, G))
  mask = np.arange(T)[None, None, :] < lengths[..., None]
  mask[0, 3] = False  # an absent rollout
  rewards = rng.integers(0, 2, (B, G)).astype(np.float64)
  rewards[1] = [1, 0, 0, 0]
  return logp, old, behaviour, mask, rewards


def _numpy_weights(kind, old, behaviour, mask):
  log_rho = np.where(mask, old - behaviour, 0.0)
  if kind == "tis_seq":
    log_rho = np.broadcast_to(log_rho.sum(-1, keepdims=True), log_rho.shape)
  return np.where(mask, np.minimum(np.exp(log_rho), CAP), 1.0), mask & (np.exp(log_rho) > CAP)


def _numpy_keep(kind, logp, old, behaviour, mask, rewards):
  if kind == "icepop":
    rho = np.exp(old - behaviour)
    return mask & (rho >= 1 / CAP) & (rho <= CAP)
  present = mask.any(-1)
  keep = mask.copy()
  for b in range(mask.shape[0]):
    mean = rewards[b][present[b]].mean()
    for k in range(mask.shape[1]):
      m = mask[b, k]
      if present[b, k] and rewards[b, k] < mean and np.mean(behaviour[b, k][m] - logp[b, k][m]) > KL:
        keep[b, k] = False
  return keep


def _correct(kind, logp, old, behaviour, mask, rewards):
  return losses.rollout_correction(kind, jnp.asarray(logp), jnp.asarray(old),
                                   jnp.asarray(behaviour), jnp.asarray(mask),
                                   jnp.asarray(rewards), cap=CAP, kl_threshold=KL)


class TestAgainstNumpy:

  @pytest.mark.parametrize("kind", ["tis_token", "tis_seq"])
  @pytest.mark.x64
  def test_truncated_weights_scale_each_tokens_gradient(self, kind):
    logp, old, behaviour, mask, rewards = _batch()
    out = _correct(kind, logp, old, behaviour, mask, rewards)
    np.testing.assert_array_equal(out.logp, logp)  # the value is untouched, to the bit
    np.testing.assert_array_equal(out.mask, mask)
    c = np.random.default_rng(1).normal(size=logp.shape)
    grad = jax.grad(lambda lp: jnp.sum(c * _correct(kind, lp, old, behaviour, mask,
                                                    rewards).logp))(jnp.asarray(logp))
    want, truncated = _numpy_weights(kind, old, behaviour, mask)
    np.testing.assert_allclose(grad, c * want, rtol=1e-12)
    assert truncated.any() and (want[mask] < CAP).any()  # both sides of the cap are exercised
    np.testing.assert_allclose(out.changed_fraction, truncated.sum() / mask.sum(), rtol=1e-6)

  @pytest.mark.parametrize("kind", ["icepop", "seq_mask"])
  @pytest.mark.x64
  def test_masks(self, kind):
    logp, old, behaviour, mask, rewards = _batch(seed=2, spread=0.9)
    if kind == "seq_mask":
      logp = logp - 0.8 * np.random.default_rng(3).random(logp.shape[:2])[..., None]
    out = _correct(kind, logp, old, behaviour, mask, rewards)
    keep = _numpy_keep(kind, logp, old, behaviour, mask, rewards)
    np.testing.assert_array_equal(out.mask, keep)
    assert (mask & ~keep).any() and keep.any()
    if kind == "icepop":  # tokens dropped on both sides of the band [1/cap, cap]
      rho = np.exp(old - behaviour)[mask]
      assert (rho > CAP).any() and (rho < 1 / CAP).any()
    np.testing.assert_array_equal(out.logp, logp)
    np.testing.assert_allclose(out.changed_fraction, (mask & ~keep).sum() / mask.sum(), rtol=1e-6)

  def test_seq_mask_spares_correct_rollouts_and_all_wrong_groups(self):
    logp, old, behaviour, mask, rewards = _batch()
    behaviour = logp + 5.0  # every rollout far off-policy
    rewards[2] = 0.0        # a group with no correct rollout: no advantage below its mean
    out = _correct("seq_mask", logp, old, behaviour, mask, rewards)
    dropped = mask.any(-1) & ~np.asarray(out.mask).any(-1)
    present = mask.any(-1)
    below = np.array([[present[b, k] and rewards[b, k] < rewards[b][present[b]].mean()
                       for k in range(4)] for b in range(3)])
    np.testing.assert_array_equal(dropped, below)

  @pytest.mark.parametrize("kind", ["tis_token", "tis_seq", "icepop", "seq_mask"])
  @pytest.mark.x64
  def test_one_group_or_any_leading_axes_as_the_batch(self, kind):
    # `[..., G, T]`: a lone group, and a stack of batches, are corrected as
    # the same groups inside the `[B, G, T]` batch.
    logp, old, behaviour, mask, rewards = _batch(seed=2, spread=0.9)
    logp = logp - 0.8 * np.random.default_rng(3).random(logp.shape[:2])[..., None]
    whole = _correct(kind, logp, old, behaviour, mask, rewards)
    c = np.random.default_rng(4).normal(size=logp.shape)

    def grad(lp, *rest):
      w = np.broadcast_to(c, np.shape(lp))
      return jax.grad(lambda x: jnp.sum(w * _correct(kind, x, *rest).logp))(jnp.asarray(lp))
    for b in range(logp.shape[0]):
      one = _correct(kind, *(x[b] for x in (logp, old, behaviour, mask, rewards)))
      np.testing.assert_array_equal(one.mask, np.asarray(whole.mask)[b])
    stacked = [np.stack([x, x]) for x in (logp, old, behaviour, mask, rewards)]
    both = _correct(kind, *stacked)
    np.testing.assert_array_equal(both.mask, np.stack([whole.mask] * 2))
    np.testing.assert_allclose(grad(*stacked)[1], grad(logp, old, behaviour, mask, rewards),
                               rtol=1e-12)

  @pytest.mark.x64
  def test_none_is_the_identity_and_on_policy_changes_nothing(self):
    logp, old, behaviour, mask, rewards = _batch()
    out = _correct("none", logp, old, behaviour, mask, rewards)
    assert out.logp is not None and float(out.changed_fraction) == 0.0
    np.testing.assert_array_equal(out.logp, logp)
    for kind in ("tis_token", "tis_seq", "icepop"):  # mu == pi_old: weights 1, nothing masked
      same = _correct(kind, logp, old, old, mask, rewards)
      np.testing.assert_array_equal(same.mask, mask)
      g = jax.grad(lambda lp, k=kind: jnp.sum(_correct(k, lp, old, old, mask, rewards).logp))(
          jnp.asarray(logp))
      np.testing.assert_array_equal(g, np.ones_like(logp))


class TestWithLosses:

  @pytest.mark.parametrize("name", sorted(losses.LOSSES))
  @pytest.mark.x64
  def test_masked_loss_is_the_reference_on_the_kept_tokens(self, name):
    # `icepop` through any loss equals the NumPy reference evaluated with the
    # kept tokens as its mask: value and gradient.
    logp, old, behaviour, mask, rewards = _batch(seed=4, spread=0.9)
    keep = _numpy_keep("icepop", logp, old, behaviour, mask, rewards)
    fn = losses.get(name)

    def corrected(lp):
      out = _correct("icepop", lp, old, behaviour, mask, rewards)
      return fn(out.logp, jnp.asarray(old), out.mask, jnp.asarray(rewards))[0]

    value, grad = jax.value_and_grad(corrected)(jnp.asarray(logp))
    want = reference.loss(name, logp, old, keep, rewards)
    np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-12)
    frozen = {"frozen_logp": logp} if name in reference.FROZEN else {}  # detached parts
    num = reference.numeric_grad(
        lambda lp: reference.loss(name, lp, old, keep, rewards, **frozen), logp)
    np.testing.assert_allclose(np.where(mask, grad, 0.0), num, rtol=1e-5, atol=1e-8)
    assert np.all(np.asarray(grad)[mask & ~keep] == 0.0)

  @pytest.mark.parametrize("name", ["real", "grpo", "gspo", "cispo"])
  @pytest.mark.x64
  def test_tis_scales_the_losss_token_gradients(self, name):
    logp, old, behaviour, mask, rewards = _batch(seed=5)
    fn = losses.get(name)
    plain = jax.grad(lambda lp: fn(lp, jnp.asarray(old), jnp.asarray(mask),
                                   jnp.asarray(rewards))[0])(jnp.asarray(logp))
    for kind in ("tis_token", "tis_seq"):
      weights, _ = _numpy_weights(kind, old, behaviour, mask)
      fixed = jax.grad(lambda lp, k=kind: fn(_correct(k, lp, old, behaviour, mask, rewards).logp,
                                             jnp.asarray(old), jnp.asarray(mask),
                                             jnp.asarray(rewards))[0])(jnp.asarray(logp))
      np.testing.assert_allclose(np.where(mask, fixed, 0), np.where(mask, weights * plain, 0),
                                 rtol=1e-10, atol=1e-14)


class TestMismatchStats:

  def test_against_numpy(self):
    _, old, behaviour, mask, _ = _batch()
    got = losses.mismatch_stats(jnp.asarray(old), jnp.asarray(behaviour), jnp.asarray(mask))
    log_rho = (old - behaviour)[mask]
    np.testing.assert_allclose(got["mismatch_kl"], np.mean(np.expm1(log_rho) - log_rho), rtol=1e-5)
    np.testing.assert_allclose(got["is_ratio_min"], np.exp(log_rho.min()), rtol=1e-5)
    np.testing.assert_allclose(got["is_ratio_max"], np.exp(log_rho.max()), rtol=1e-5)
    seq = np.abs(np.where(mask, old - behaviour, 0).sum(-1)).max()
    np.testing.assert_allclose(got["seq_log_ratio_max"], seq, rtol=1e-5)
    same = losses.mismatch_stats(jnp.asarray(old), jnp.asarray(old), jnp.asarray(mask))
    assert float(same["mismatch_kl"]) == 0.0 and float(same["is_ratio_max"]) == 1.0
    empty = losses.mismatch_stats(jnp.asarray(old), jnp.asarray(old), jnp.zeros(mask.shape, bool))
    assert all(np.isnan(float(v)) for v in empty.values())

  def test_extreme_log_ratios_stay_finite(self):
    _, old, _, mask, rewards = _batch()
    behaviour = old - 1e4  # a sequence ratio of e^(1e4 T): only its log is reported
    got = losses.mismatch_stats(jnp.asarray(old, jnp.float32), jnp.asarray(behaviour, jnp.float32),
                                jnp.asarray(mask))
    assert np.isfinite(float(got["seq_log_ratio_max"]))
    out = _correct("tis_seq", old.astype(np.float32), old, behaviour, mask, rewards)
    g = jax.grad(lambda lp: jnp.sum(_correct("tis_seq", lp, old, behaviour, mask,
                                             rewards).logp))(jnp.asarray(old, jnp.float32))
    assert np.all(np.isfinite(g)) and float(out.changed_fraction) == 1.0


def test_bad_arguments():
  logp, old, behaviour, mask, rewards = _batch()
  with pytest.raises(ValueError, match="`kind` must be one of"):
    losses.rollout_correction("tis", logp, old, behaviour, mask, rewards)
  with pytest.raises(ValueError, match="`cap` must be > 1"):
    losses.rollout_correction("tis_token", logp, old, behaviour, mask, rewards, cap=0.5)
  with pytest.raises(ValueError, match="`kl_threshold` must be > 0"):
    losses.rollout_correction("seq_mask", logp, old, behaviour, mask, rewards, kl_threshold=0.0)
