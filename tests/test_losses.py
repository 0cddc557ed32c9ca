"""Tests of `real_jax.losses` against an independent NumPy float64 reference."""

from __future__ import annotations

import functools

import batches
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

from real_jax import losses

ALL = tuple(losses.LOSSES)
LABEL = losses.LABEL_LOSSES
CLIPPED = losses.CLIPPED_LOSSES
ADVANTAGE = losses.ADVANTAGE_LOSSES
AGGREGATED = tuple(n for n in ADVANTAGE if "loss_agg_mode" in losses.hyperparameters(n))
FROZEN = reference.FROZEN
# A penalty that moves tokens whatever their advantage: DRO's pull towards
# pi_old, and KL-Cov's on its selected tokens (with every A = 0 every
# covariance is 0, and the tie goes to the first token).
PENALISED = ("dro", "kl_cov")


def jitted(name, **kwargs):
  return jax.jit(functools.partial(losses.get(name), **kwargs))


def loss_and_grad(name, logp, old, mask, rewards, **kwargs):
  fn = functools.partial(losses.get(name), **kwargs)
  (value, _), g = jax.jit(jax.value_and_grad(
      lambda lp: fn(lp, old, mask, rewards), has_aux=True))(logp)
  return value, g


# ---------------------------------------------------------------- values ----


class TestAgainstNumpyReference:

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.parametrize("seed", [0, 1, 2])
  @pytest.mark.x64
  def test_float64(self, name, seed):
    batch = batches.random_batch(seed)
    got, _ = jitted(name)(*map(jnp.asarray, batch))
    want = reference.loss(name, *batch)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), want, rtol=1e-12, atol=1e-14)

  @pytest.mark.parametrize("name", ALL)
  def test_float32_keeps_dtype_and_matches(self, name):
    batch = batches.random_batch(3, dtype=np.float32)
    got, _ = jitted(name)(*map(jnp.asarray, batch))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), reference.loss(name, *batch), rtol=2e-5)

  @pytest.mark.parametrize("name", ALL)
  def test_bfloat16_matches_the_float64_reference(self, name):
    # The reference takes the bfloat16-rounded inputs, so only the loss's own
    # arithmetic is judged: bfloat16 keeps 8 mantissa bits (relative rounding
    # 2^-9 = 2e-3), and a loss is a few dozen roundings deep.
    logp, old, mask, rewards = batches.random_batch(3, score_scale=0.5)
    narrow = [jnp.asarray(x, jnp.bfloat16) for x in (logp, old)]
    rounded = [np.where(mask, np.asarray(x, np.float64), np.nan) for x in narrow]
    got, _ = jitted(name)(*narrow, jnp.asarray(mask), jnp.asarray(rewards, jnp.bfloat16))
    assert got.dtype == jnp.bfloat16
    want = reference.loss(name, *rounded, mask, rewards)
    # LUSPO's terms are |o_k| (up to T = 7) times GSPO's, and so is their
    # rounding; VESPO's weight is exponential in a sum of up to T log-ratios.
    atol = 1e-3 * (logp.shape[-1] if name in ("luspo", "vespo") else 1)
    np.testing.assert_allclose(float(got), want, rtol=3e-2, atol=atol)

  @pytest.mark.parametrize("name", LABEL)
  @pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
  @pytest.mark.x64
  def test_label_losses_across_tau(self, name, tau):
    batch = batches.random_batch(4, score_scale=0.2)
    got, _ = jitted(name, tau=tau)(*map(jnp.asarray, batch))
    np.testing.assert_allclose(float(got), reference.loss(name, *batch, tau=tau), rtol=1e-11)

  @pytest.mark.parametrize("name", AGGREGATED)
  @pytest.mark.parametrize("mode", losses.AGG_MODES)
  @pytest.mark.x64
  def test_every_aggregation_mode(self, name, mode):
    batch = batches.random_batch(5, score_scale=0.3)
    got, _ = jitted(name, loss_agg_mode=mode)(*map(jnp.asarray, batch))
    want = reference.loss(name, *batch, loss_agg_mode=mode)
    np.testing.assert_allclose(float(got), want, rtol=1e-12, atol=1e-14)

  @pytest.mark.parametrize("kl_type", losses.KL_TYPES)
  @pytest.mark.x64
  def test_kl_penalty(self, kl_type):
    logp, old, mask, rewards = batches.random_batch(6)
    ref_logp = np.where(mask, old + 0.1 * np.random.default_rng(0).normal(size=old.shape), np.nan)
    got, aux = jitted("grpo", beta=0.1, kl_type=kl_type)(
        *map(jnp.asarray, (logp, old, mask, rewards)), ref_logp=jnp.asarray(ref_logp))
    want = reference.loss("grpo", logp, old, mask, rewards, beta=0.1,
                          ref_logp=ref_logp, kl_type=kl_type)
    np.testing.assert_allclose(float(got), want, rtol=1e-12)
    assert float(aux.kl) != 0.0

  @pytest.mark.x64
  def test_k3_is_clamped_as_in_verl(self):
    # verl's low_var_kl: log-ratio clamped to [-20, 20], the estimate to [-10, 10].
    x = np.array([-3.0, 0.0, 1.0, 3.0, 25.0])  # ref_logp - logp
    got = losses.kl_penalty(jnp.zeros(5), jnp.asarray(x), "k3")
    want = np.minimum(np.exp(np.minimum(x, 20.0)) - np.minimum(x, 20.0) - 1, 10.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert float(got[3]) == 10.0 and float(got[0]) == pytest.approx(np.exp(-3) + 2)

  @pytest.mark.x64
  def test_sequence_scores(self):
    logp, old, mask, _ = batches.random_batch(7)
    got = jax.jit(losses.sequence_scores)(logp, old, mask)
    np.testing.assert_allclose(got, reference.scores(logp, old, mask), rtol=1e-13, atol=1e-15)

  @pytest.mark.parametrize("estimator", losses.ADVANTAGE_ESTIMATORS)
  @pytest.mark.x64
  def test_advantage_estimators_on_ragged_groups(self, estimator):
    # random_batch has groups with absent rollouts, one-sided and empty groups.
    _, _, mask, rewards = batches.random_batch(8)
    got = losses.batch_advantages(jnp.asarray(rewards), jnp.asarray(mask), estimator=estimator)
    np.testing.assert_allclose(got, reference.advantages(mask, rewards, estimator), atol=1e-12)

  @pytest.mark.parametrize("estimator", losses.ADVANTAGE_ESTIMATORS)
  @pytest.mark.x64
  def test_advantage_estimators_on_graded_rewards(self, estimator):
    # Non-binary rewards: OPO's length weights, pass@k's best-minus-second and
    # REINFORCE++'s whitening all see distinct values.
    _, _, mask, _ = batches.random_batch(28)
    rewards = np.round(np.random.default_rng(28).uniform(0, 3, mask.shape[:2]), 1)
    got = losses.batch_advantages(jnp.asarray(rewards), jnp.asarray(mask), estimator=estimator)
    np.testing.assert_allclose(got, reference.advantages(mask, rewards, estimator), atol=1e-12)

  @pytest.mark.x64
  def test_estimators_by_hand(self):
    # One group of four, lengths 1, 2, 3, 4, rewards 1, 0, 0, 1.
    mask = jnp.asarray(np.arange(4)[None, None, :] < np.arange(1, 5)[None, :, None])
    r = jnp.array([[1.0, 0.0, 0.0, 1.0]])
    # OPO: baseline (1 + 4) / (1 + 2 + 3 + 4) = 1/2.
    np.testing.assert_allclose(losses.batch_advantages(r, mask, estimator="opo"),
                               [[0.5, -0.5, -0.5, 0.5]], rtol=1e-15)
    # pass@k: only the first best rollout; r_max - r_second = 0 here.
    np.testing.assert_array_equal(losses.batch_advantages(r, mask, estimator="grpo_passk"),
                                  [[0.0, 0.0, 0.0, 0.0]])
    r2 = jnp.array([[0.0, 2.0, 1.0, 2.0]])  # tie at the top, then 1: still 0
    np.testing.assert_array_equal(losses.batch_advantages(r2, mask, estimator="grpo_passk"),
                                  [[0.0, 0.0, 0.0, 0.0]])
    r3 = jnp.array([[0.0, 3.0, 1.0, 2.0]])  # (3 - 2) / std(0, 3, 1, 2; ddof=1)
    want = 1.0 / (np.std([0.0, 3.0, 1.0, 2.0], ddof=1) + 1e-6)
    np.testing.assert_allclose(losses.batch_advantages(r3, mask, estimator="grpo_passk"),
                               [[0.0, want, 0.0, 0.0]], rtol=1e-12)
    # REINFORCE++-baseline: centred (1/2, -1/2, -1/2, 1/2) over 10 tokens;
    # token mean (1/2 + 4/2 - 2/2 - 3/2) / 10 = 0; var = sum(len) / 4 / 9.
    sigma = np.sqrt(10 * 0.25 / 9 + 1e-8)
    np.testing.assert_allclose(losses.batch_advantages(r, mask, estimator="reinforce_pp"),
                               [[0.5 / sigma, -0.5 / sigma, -0.5 / sigma, 0.5 / sigma]],
                               rtol=1e-12)

  @pytest.mark.x64
  def test_rloo_by_hand_with_an_absent_rollout(self):
    # Present rewards (1, 0, 0), the fourth rollout absent and "correct":
    # A = 1 - (0 + 0)/2 = 1, and 0 - (1 + 0)/2 = -1/2 for each wrong one.
    got = losses.group_advantages(jnp.array([1.0, 0.0, 0.0, 1.0]),
                                  jnp.array([True, True, True, False]), estimator="rloo")
    np.testing.assert_allclose(got, [1.0, -0.5, -0.5, 0.0], rtol=1e-15)

  @pytest.mark.parametrize("name", ADVANTAGE)
  @pytest.mark.parametrize("estimator", ["rloo", "drgrpo"])
  @pytest.mark.x64
  def test_every_objective_with_every_estimator(self, name, estimator):
    batch = batches.random_batch(22)
    got, aux = jitted(name, advantage=estimator)(*map(jnp.asarray, batch))
    want = reference.loss(name, *batch, advantage=estimator)
    np.testing.assert_allclose(float(got), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(aux.advantages, reference.advantages(batch[2], batch[3], estimator),
                               atol=1e-12)

  @pytest.mark.parametrize("name", ["grpo", "dapo", "dr_grpo"])
  @pytest.mark.x64
  def test_dual_clip(self, name):
    batch = batches.random_batch(23, score_scale=1.5)  # ratios well past c = 1.5
    got, _ = jitted(name, clip_ratio_c=1.5)(*map(jnp.asarray, batch))
    want = reference.loss(name, *batch, clip_ratio_c=1.5)
    np.testing.assert_allclose(float(got), want, rtol=1e-12, atol=1e-14)
    assert abs(want - reference.loss(name, *batch)) > 1e-3  # the cap is active here

  @pytest.mark.parametrize("name", ["grpo", "dapo", "dr_grpo", "gspo", "luspo"])
  @pytest.mark.parametrize("delta", [1.1, 1.5])
  @pytest.mark.x64
  def test_two_sided_clip(self, name, delta):
    batch = batches.random_batch(24, score_scale=1.0)
    got, _ = jitted(name, delta=delta)(*map(jnp.asarray, batch))
    np.testing.assert_allclose(float(got), reference.loss(name, *batch, delta=delta), rtol=1e-12)
    logp, old, mask, rewards = batch
    _, g = loss_and_grad(name, *map(jnp.asarray, batch), delta=delta)
    num = reference.numeric_grad(lambda x: reference.loss(
        name, np.where(mask, x, np.nan), old, mask, rewards, delta=delta), np.where(mask, logp, 0.0))
    np.testing.assert_allclose(np.where(mask, g, 0.0), num, atol=1e-7)

  @pytest.mark.parametrize("name", ["grpo", "cispo", "gpg", "dppo_tv", "dro", "vespo"])
  @pytest.mark.x64
  def test_positive_nll(self, name):
    batch = batches.random_batch(25)
    logp, old, mask, rewards = batch
    got, _ = jitted(name, positive_nll=0.1)(*map(jnp.asarray, batch))
    np.testing.assert_allclose(float(got), reference.loss(name, *batch, positive_nll=0.1),
                               rtol=1e-12)
    # The NLL's own gradient: -0.1 / N+ on every token of a rollout with reward > 0.
    _, with_nll = loss_and_grad(name, *map(jnp.asarray, batch), positive_nll=0.1)
    _, without = loss_and_grad(name, *map(jnp.asarray, batch))
    correct = mask & (rewards > 0)[..., None]
    np.testing.assert_allclose(np.where(mask, with_nll - without, 0.0),
                               np.where(correct, -0.1 / correct.sum(), 0.0), atol=1e-15)

  def test_positive_nll_without_a_correct_rollout_is_zero(self):
    batch = batches.random_batch(26, kinds=("all_wrong",))
    got, _ = jitted("grpo", positive_nll=0.5)(*map(jnp.asarray, batch))
    assert float(got) == 0.0

  @pytest.mark.x64
  def test_kl_cov_penalty_has_zero_derivative_on_policy(self):
    # torch's |s|' at 0 is sgn(0) = 0 (verl's KL-Cov); JAX's own would be 1.
    logp = jnp.zeros((1, 2, 1))
    _, g = loss_and_grad("kl_cov", logp, logp, jnp.ones((1, 2, 1)), jnp.array([[1.0, 0.0]]))
    a = 0.5 / (np.std([1.0, 0.0], ddof=1) + 1e-6)  # GRPO's |A|; token-mean over 2 tokens
    np.testing.assert_allclose(g[..., 0], [[-a / 2, a / 2]], rtol=1e-12)

  def test_bnpo_is_token_mean_within_a_call(self):
    batch = tuple(map(jnp.asarray, batches.random_batch(27)))
    a, _ = jitted("grpo", loss_agg_mode="bnpo")(*batch)
    b, _ = jitted("grpo", loss_agg_mode="token-mean")(*batch)
    assert float(a) == float(b)

  @pytest.mark.x64
  def test_covariance_selection_as_the_rule_reads(self):
    # 2e-4 of ~100 tokens selects 1; raise the ratio so several are chosen.
    logp, old, mask, rewards = batches.random_batch(29, score_scale=1.0)
    adv = reference.advantages(mask, rewards)
    for name, kwargs in (("clip_cov", dict(clip_cov_ratio=0.1, clip_cov_lb=0.0, clip_cov_ub=5.0)),
                         ("kl_cov", dict(kl_cov_ratio=0.1))):
      cfg = dict(reference.CLIPPED[name], **kwargs)
      want = reference._covariance_selection(name, cfg, np.where(mask, logp, 0.0), old, mask, adv)
      args = (jnp.asarray(logp), jnp.asarray(mask), jnp.asarray(adv))
      if name == "clip_cov":
        got = losses.clip_cov_selection(args[0], jnp.asarray(old), *args[1:], epsilon_low=0.2,
                                        epsilon_high=0.2, **kwargs)
      else:
        got = losses.kl_cov_selection(*args, **kwargs)
      assert len(want) > 1
      assert set(zip(*np.nonzero(np.asarray(got)), strict=True)) == want
      got_loss, _ = jitted(name, **kwargs)(*map(jnp.asarray, (logp, old, mask, rewards)))
      np.testing.assert_allclose(float(got_loss),
                                 reference.loss(name, logp, old, mask, rewards, **kwargs),
                                 rtol=1e-12)

  @pytest.mark.x64
  def test_token_covariance_against_numpy(self):
    # `(A - mean A)(log pi - mean log pi)` over the batch's response tokens,
    # and -inf off them, so that no selection can prefer a padded slot.
    logp, _, mask, rewards = batches.random_batch(29, score_scale=1.0)
    adv = reference.advantages(mask, rewards)
    a = np.broadcast_to(adv[..., None], mask.shape)[mask]
    lp = logp[mask]
    want = np.full(mask.shape, -np.inf)
    want[mask] = (a - a.mean()) * (lp - lp.mean())
    got = losses.token_covariance(jnp.asarray(logp), jnp.asarray(mask), jnp.asarray(adv))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-15)
    assert (~mask).any() and (want[mask] > 0).any() and (want[mask] < 0).any()

  @pytest.mark.x64
  def test_cispo_band_as_verl(self):
    batch = batches.random_batch(24, score_scale=0.5)
    got, _ = jitted("cispo", epsilon_low=0.2, epsilon_high=0.28)(*map(jnp.asarray, batch))
    want = reference.loss("cispo", *batch, epsilon_low=0.2, epsilon_high=0.28)
    np.testing.assert_allclose(float(got), want, rtol=1e-12, atol=1e-14)

  @pytest.mark.x64
  def test_real_by_hand(self):
    # One group, positive score 0.5, negative score -0.5, tau = 0.5:
    # log(1 + e^{-1}) + log(1 + e^{-1}) = 2 * 0.3132616875...
    logp = jnp.array([[[0.5], [-0.5]]])
    loss, _ = losses.real(logp, jnp.zeros_like(logp), jnp.ones_like(logp),
                          jnp.array([[1.0, 0.0]]))
    np.testing.assert_allclose(float(loss), 2 * np.log1p(np.exp(-1.0)), rtol=1e-14)


class TestGradientsAgainstFiniteDifferences:
  """Autodiff against central differences of the NumPy reference (float64)."""

  @pytest.mark.parametrize("name", ALL)
  def test_grad(self, name):
    logp, old, mask, rewards = batches.random_batch(9, B=5, G=4, T=3)
    _, g = loss_and_grad(name, *map(jnp.asarray, (logp, old, mask, rewards)))
    clean = np.where(mask, logp, 0.0)
    frozen = {"frozen_logp": logp} if name in FROZEN else {}
    num = reference.numeric_grad(
        lambda x: reference.loss(name, np.where(mask, x, np.nan), old, mask, rewards, **frozen),
        clean)
    np.testing.assert_allclose(np.where(mask, g, 0.0), num, atol=1e-7)
    assert np.all(np.asarray(g)[~mask] == 0.0)

  @pytest.mark.parametrize("kl_type", losses.KL_TYPES)
  def test_grad_with_kl_penalty(self, kl_type):
    # The penalty's own gradient, not only its value: beta * KL must reach logp.
    logp, old, mask, rewards = batches.random_batch(19, B=4, G=4, T=3)
    ref_logp = np.where(mask, old + 0.1 * np.random.default_rng(1).normal(size=old.shape), np.nan)
    kw = dict(beta=0.5, kl_type=kl_type)
    _, g = loss_and_grad("grpo", *map(jnp.asarray, (logp, old, mask, rewards)),
                         ref_logp=jnp.asarray(ref_logp), **kw)
    _, g0 = loss_and_grad("grpo", *map(jnp.asarray, (logp, old, mask, rewards)))
    num = reference.numeric_grad(
        lambda x: reference.loss("grpo", np.where(mask, x, np.nan), old, mask, rewards,
                                 ref_logp=ref_logp, **kw),
        np.where(mask, logp, 0.0))
    np.testing.assert_allclose(np.where(mask, g, 0.0), num, atol=1e-7)
    assert np.max(np.abs(np.asarray(g) - np.asarray(g0))) > 1e-3  # the penalty moved it


# ------------------------------------------------------------ invariances ----


class TestInvariances:

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.x64
  def test_permuting_rollouts_in_a_group(self, name):
    logp, old, mask, rewards = batches.random_batch(10)
    perm = np.random.default_rng(0).permutation(logp.shape[1])
    a, ga = loss_and_grad(name, *map(jnp.asarray, (logp, old, mask, rewards)))
    b, gb = loss_and_grad(name, *map(jnp.asarray, (logp[:, perm], old[:, perm],
                                                   mask[:, perm], rewards[:, perm])))
    np.testing.assert_allclose(float(a), float(b), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(ga)[:, perm], gb, rtol=1e-12, atol=1e-15)

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.x64
  def test_permuting_groups(self, name):
    logp, old, mask, rewards = batches.random_batch(11)
    perm = np.random.default_rng(1).permutation(logp.shape[0])
    a, _ = jitted(name)(*map(jnp.asarray, (logp, old, mask, rewards)))
    b, _ = jitted(name)(*map(jnp.asarray, (logp[perm], old[perm], mask[perm], rewards[perm])))
    np.testing.assert_allclose(float(a), float(b), rtol=1e-13)

  @pytest.mark.parametrize("group_fn", [losses.real_group, losses.grad_group,
                                        losses.bce_group, losses.real_product_group])
  def test_vmap_over_groups_equals_python_loop(self, group_fn):
    logp, old, mask, rewards = batches.random_batch(12)
    scores = losses.sequence_scores(logp, old, mask)
    present = mask.any(-1)
    pos, neg = present & (rewards == 1), present & (rewards == 0)
    fn = jax.jit(functools.partial(group_fn, tau=0.5))
    vl, vc = jax.vmap(fn)(scores, jnp.asarray(pos), jnp.asarray(neg))
    for b in range(logp.shape[0]):
      lb, cb = fn(scores[b], jnp.asarray(pos[b]), jnp.asarray(neg[b]))
      np.testing.assert_allclose(float(vl[b]), float(lb), rtol=1e-14)
      assert float(vc[b]) == float(cb)

  @pytest.mark.parametrize("sequence_level", [False, True])
  def test_vmap_over_groups_equals_python_loop_clipped(self, sequence_level):
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(13))
    adv = losses.batch_advantages(rewards, mask)
    fn = jax.jit(functools.partial(losses.clipped_surrogate_group, epsilon_low=0.2,
                                   epsilon_high=0.28, sequence_level=sequence_level))
    v_loss, v_clip = jax.vmap(fn)(logp, old, mask, adv)
    for b in range(logp.shape[0]):
      l_loss, l_clip = fn(logp[b], old[b], mask[b], adv[b])
      np.testing.assert_allclose(v_loss[b], l_loss, rtol=1e-14)
      np.testing.assert_array_equal(v_clip[b], l_clip)

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.x64
  def test_padding_equals_removal(self, name):
    # An unpadded batch (every rollout present, full length) ...
    rng = np.random.default_rng(14)
    B, G, T = 3, 4, 5
    old = rng.normal(-1, 0.5, (B, G, T))
    logp = old + 0.5 * rng.normal(size=(B, G, T))
    mask = np.ones((B, G, T), bool)
    rewards = np.array([[1, 0, 0, 1], [1, 1, 0, 1], [0, 0, 0, 0]], float)
    # ... padded with 2 absent rollouts, 3 padded tokens and 1 empty group,
    # whose positions hold garbage and whose rewards say "correct".
    P = (B + 1, G + 2, T + 3)
    logp_p = np.full(P, np.nan)
    old_p = np.full(P, -np.inf)
    mask_p = np.zeros(P, bool)
    rewards_p = np.ones(P[:2])
    logp_p[:B, :G, :T], old_p[:B, :G, :T], mask_p[:B, :G, :T] = logp, old, mask
    rewards_p[:B, :G] = rewards
    kwargs = {"norm_length": T} if name == "dr_grpo" else {}
    a, ga = loss_and_grad(name, *map(jnp.asarray, (logp, old, mask, rewards)), **kwargs)
    b, gb = loss_and_grad(name, *map(jnp.asarray, (logp_p, old_p, mask_p, rewards_p)), **kwargs)
    np.testing.assert_allclose(float(b), float(a), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(gb)[:B, :G, :T], ga, rtol=1e-13, atol=1e-16)
    assert np.all(np.isfinite(gb))
    assert np.all(np.asarray(gb)[~mask_p] == 0.0)

  @pytest.mark.parametrize("name", ALL)
  def test_masked_positions_cannot_matter(self, name):
    clean = batches.random_batch(15, garbage=0.0)
    for garbage in (np.nan, -np.inf, np.inf, 1e30):
      dirty = batches.random_batch(15, garbage=garbage)
      a, ga = loss_and_grad(name, *map(jnp.asarray, clean))
      b, gb = loss_and_grad(name, *map(jnp.asarray, dirty))
      assert float(a) == float(b)
      np.testing.assert_array_equal(ga, gb)

  def test_product_style_is_shift_invariant(self):
    logp, old, mask, rewards = batches.random_batch(16)
    shift = np.random.default_rng(2).normal(size=(logp.shape[0], 1, 1))
    a, _ = jitted("real_product")(*map(jnp.asarray, (logp, old, mask, rewards)))
    b, _ = jitted("real_product")(*map(jnp.asarray, (logp + shift, old, mask, rewards)))
    np.testing.assert_allclose(float(a), float(b), rtol=1e-12)
    c, _ = jitted("real")(*map(jnp.asarray, (logp + shift, old, mask, rewards)))
    d, _ = jitted("real")(*map(jnp.asarray, (logp, old, mask, rewards)))
    assert abs(float(c) - float(d)) > 1e-3  # REAL's anchor breaks the symmetry

  @pytest.mark.slow
  @pytest.mark.x64
  @hypothesis.settings(deadline=None, max_examples=25)
  @hypothesis.given(seed=st.integers(0, 2**31 - 1), G=st.integers(1, 9),
                    name=st.sampled_from(ALL))
  def test_jit_equals_eager_and_reference(self, seed, G, name):
    batch = batches.random_batch(seed, B=3, G=G, T=4, kinds=("mixed", "padded_rollouts")
                                 if G > 2 else ("mixed",))
    args = tuple(map(jnp.asarray, batch))
    eager, _ = losses.get(name)(*args)
    compiled, _ = jitted(name)(*args)
    np.testing.assert_allclose(float(eager), float(compiled), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(float(compiled), reference.loss(name, *batch), rtol=1e-11, atol=1e-14)


# ------------------------------------------------------ degenerate groups ----


class TestDegenerateGroups:

  @pytest.mark.parametrize("name", [n for n in ALL if n not in PENALISED])
  @pytest.mark.parametrize("kind", ["all_correct", "all_wrong", "empty"])
  def test_zero_loss_and_zero_gradient(self, name, kind):
    logp, old, mask, rewards = batches.random_batch(17, kinds=(kind,))
    loss, g = loss_and_grad(name, *map(jnp.asarray, (logp, old, mask, rewards)))
    assert float(loss) == 0.0
    assert np.all(np.asarray(g) == 0.0)

  @pytest.mark.parametrize("kind", ["all_correct", "all_wrong"])
  @pytest.mark.x64
  def test_penalties_act_without_advantage(self, kind):
    # With every A = 0 only the penalties move tokens: DRO pulls each token
    # by beta * s / N; KL-Cov pushes its one selected token (every covariance
    # is 0, so the first) by sign(s) / N.
    logp, old, mask, rewards = batches.random_batch(17, kinds=(kind,))
    n = mask.sum()
    s = np.where(mask, logp - old, 0.0)
    _, g = loss_and_grad("dro", *map(jnp.asarray, (logp, old, mask, rewards)))
    np.testing.assert_allclose(g, 0.1 * s / n, rtol=1e-12, atol=1e-15)
    _, g = loss_and_grad("kl_cov", *map(jnp.asarray, (logp, old, mask, rewards)))
    first = np.zeros(mask.shape, bool)
    first[np.unravel_index(np.flatnonzero(mask)[0], mask.shape)] = True
    np.testing.assert_allclose(g, np.where(first, np.sign(s) / n, 0.0), rtol=1e-12)

  @pytest.mark.parametrize("name", [n for n in ALL if n not in PENALISED])
  def test_degenerate_group_leaves_others_untouched(self, name):
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(18, kinds=("mixed", "all_correct")))
    _, g = loss_and_grad(name, logp, old, mask, rewards)
    assert np.all(np.asarray(g)[1::2] == 0.0)
    assert np.any(np.asarray(g)[0::2] != 0.0)

  @pytest.mark.parametrize("name", LABEL)
  def test_label_normaliser_counts_degenerate_groups(self, name):
    # REAL, GRAD, product: divide by every non-empty group (docs/derivations.md, section 5).
    # BCE: divide by the rollouts of mixed groups only.
    logp, old, mask, rewards = batches.random_batch(19)
    _, aux = jitted(name)(*map(jnp.asarray, (logp, old, mask, rewards)))
    present = mask.any(-1)
    mixed = (present & (rewards == 1)).any(-1) & (present & (rewards == 0)).any(-1)
    want = present[mixed].sum() if name == "bce" else present.any(-1).sum()
    assert float(aux.normaliser) == want
    np.testing.assert_array_equal(aux.valid_group, mixed)


# -------------------------------------------- clipped objectives' regions ----


def _one_group_grad(name, token_log_ratio, reward_of_probe, **kwargs):
  """Gradient of a one-token probe rollout in a group of 2 (rewards r, 1-r).

  With rewards {1, 0} and ddof=1 the advantages are +-1/sqrt(2) (scaled) or
  +-1/2 (Dr.GRPO): the probe's sign of A is the sign of `reward_of_probe - 1/2`.
  """
  logp = jnp.array([[[token_log_ratio], [0.0]]])
  rewards = jnp.array([[reward_of_probe, 1.0 - reward_of_probe]])
  _, g = loss_and_grad(name, logp, jnp.zeros_like(logp), jnp.ones_like(logp), rewards, **kwargs)
  return float(g[0, 0, 0])


class TestClipRegions:
  """Where the gradient w.r.t. the log-ratio is zero, both sides, both signs of A.

  A > 0: cut above 1 + eps_high, alive below 1 - eps_low (pushes up).
  A < 0: cut below 1 - eps_low, alive above 1 + eps_high (pushes down).
  """

  @pytest.mark.parametrize("name", CLIPPED)
  def test_positive_advantage(self, name):
    el, eh = reference.CLIPPED[name]["epsilon_low"], reference.CLIPPED[name]["epsilon_high"]
    above = np.log(1 + eh) + 0.05
    below = np.log(1 - el) - 0.05
    inside = 0.5 * (np.log(1 - el) + np.log(1 + eh))
    assert _one_group_grad(name, above, 1.0) == 0.0
    assert _one_group_grad(name, below, 1.0) < 0.0  # descent raises the log-prob
    assert _one_group_grad(name, inside, 1.0) < 0.0

  @pytest.mark.parametrize("name", CLIPPED)
  def test_negative_advantage(self, name):
    el, eh = reference.CLIPPED[name]["epsilon_low"], reference.CLIPPED[name]["epsilon_high"]
    above = np.log(1 + eh) + 0.05
    below = np.log(1 - el) - 0.05
    inside = 0.5 * (np.log(1 - el) + np.log(1 + eh))
    assert _one_group_grad(name, below, 0.0) == 0.0
    assert _one_group_grad(name, above, 0.0) > 0.0  # descent lowers the log-prob
    assert _one_group_grad(name, inside, 0.0) > 0.0

  @pytest.mark.x64
  def test_gradient_value_is_adv_times_ratio(self):
    # GRPO, seq-mean-token-mean, 2 one-token rollouts: d/ds = -A e^s / 2.
    for s, r in ((0.1, 1.0), (-0.4, 1.0), (0.7, 0.0), (0.05, 0.0)):
      a = (r - 0.5) / (np.sqrt(0.5) + 1e-6)
      np.testing.assert_allclose(_one_group_grad("grpo", s, r), -a * np.exp(s) / 2, rtol=1e-12)

  @pytest.mark.parametrize("name", CLIPPED)
  def test_clip_fraction_reports_cut_tokens(self, name):
    el, eh = reference.CLIPPED[name]["epsilon_low"], reference.CLIPPED[name]["epsilon_high"]
    logp = jnp.array([[[np.log(1 + eh) + 0.1], [np.log(1 - el) - 0.1]]])
    _, aux = jitted(name)(logp, jnp.zeros_like(logp), jnp.ones_like(logp), jnp.array([[1.0, 0.0]]))
    np.testing.assert_array_equal(aux.rollout_clip_fraction, [[1.0, 1.0]])
    assert float(aux.clip_fraction) == 1.0

  @pytest.mark.parametrize("name", CLIPPED)
  @pytest.mark.x64
  def test_clip_fraction_counts_tokens_not_rollouts(self, name):
    # Rollouts of several tokens with padding: the fractions' denominators are
    # each rollout's and the batch's real tokens.
    el, eh = reference.CLIPPED[name]["epsilon_low"], reference.CLIPPED[name]["epsilon_high"]
    up, mid, down = np.log(1 + eh) + 0.1, 0.5 * (np.log(1 - el) + np.log(1 + eh)), np.log(1 - el) - 0.1
    mask = jnp.array([[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])
    rewards = jnp.array([[1.0, 0.0]])  # A > 0 is cut above 1 + eh, A < 0 below 1 - el
    if name in ("gspo", "luspo"):  # one ratio per rollout: all of its tokens or none; padding never
      logp = jnp.array([[[up, up, up], [down, down, down]]])
      want, want_all = [[1.0, 1.0]], 1.0
    else:  # per token: rollout 0 has one cut token of 2, rollout 1 one of 3
      logp = jnp.array([[[up, mid, up], [down, mid, up]]])
      want, want_all = [[1 / 2, 1 / 3]], 2 / 5
    _, aux = jitted(name)(logp, jnp.zeros_like(logp), mask, rewards)
    np.testing.assert_allclose(aux.rollout_clip_fraction, want, rtol=1e-12)
    np.testing.assert_allclose(float(aux.clip_fraction), want_all, rtol=1e-12)

  @pytest.mark.x64
  def test_no_dual_clip_negatives_unbounded(self):
    # docs/derivations.md, section 6: |W_GRPO| grows like e^s for A < 0 (gradient domination).
    g1 = _one_group_grad("grpo", 2.0, 0.0)
    g2 = _one_group_grad("grpo", 4.0, 0.0)
    np.testing.assert_allclose(g2 / g1, np.exp(2.0), rtol=1e-12)


class TestObjectivesSinceThePaper:
  """Where each new objective's gradient is zero, capped or smooth, for both signs of A.

  `_one_group_grad` probes a one-token rollout in a group of two, so the
  aggregation factor is 1/2 for every mode but `seq-mean-token-sum-norm`.
  """

  A = 0.5 / (np.sqrt(0.5) + 1e-6)  # |A| of a {1, 0} group, grpo estimator

  @pytest.mark.parametrize("s", [-3.0, -0.5, 0.0, 0.3, 1.0, 2.5])
  @pytest.mark.parametrize("r", [1.0, 0.0])
  @pytest.mark.x64
  def test_cispo_is_never_zero_and_capped(self, s, r):
    sign = 1.0 if r else -1.0
    w = min(np.exp(s), 5.0)  # default: cap only, at 1 + 4
    np.testing.assert_allclose(_one_group_grad("cispo", s, r), -sign * self.A * w / 2, rtol=1e-12)
    w_band = min(max(np.exp(s), 0.8), 1.28)  # verl's band
    np.testing.assert_allclose(
        _one_group_grad("cispo", s, r, epsilon_low=0.2, epsilon_high=0.28),
        -sign * self.A * w_band / 2, rtol=1e-12)

  @pytest.mark.parametrize("s", [-2.0, 0.0, 0.2, 1.5])
  @pytest.mark.parametrize("r", [1.0, 0.0])
  @pytest.mark.x64
  def test_sapo_gate_derivative(self, s, r):
    sign, tau = (1.0, 1.0) if r else (-1.0, 1.05)
    sigma = 1 / (1 + np.exp(-tau * (np.exp(s) - 1)))
    want = -sign * self.A * 4 * sigma * (1 - sigma) * np.exp(s) / 2
    np.testing.assert_allclose(_one_group_grad("sapo", s, r), want, rtol=1e-12)

  @pytest.mark.x64
  def test_sapo_is_exactly_minus_a_on_policy(self):
    np.testing.assert_allclose(_one_group_grad("sapo", 0.0, 1.0), -self.A / 2, rtol=1e-13)

  @pytest.mark.x64
  def test_gmpo_clip_regions(self):
    # A > 0: cut above +0.4, alive below -0.4; A < 0: cut below -0.4, alive above +0.4.
    assert _one_group_grad("gmpo", 0.5, 1.0) == 0.0
    np.testing.assert_allclose(_one_group_grad("gmpo", -0.6, 1.0), -self.A * np.exp(-0.6) / 2,
                               rtol=1e-12)
    assert _one_group_grad("gmpo", -0.5, 0.0) == 0.0
    np.testing.assert_allclose(_one_group_grad("gmpo", 0.9, 0.0), self.A * np.exp(0.9) / 2,
                               rtol=1e-12)

  @pytest.mark.x64
  def test_gmpo_clipped_token_still_moves_its_rollouts_ratio(self):
    # Two tokens: one clipped (0 gradient), one alive, whose weight is the
    # geometric-mean ratio over both, clipped value included.
    logp = jnp.array([[[1.0, 0.1], [0.0, 0.0]]])
    _, g = loss_and_grad("gmpo", logp, jnp.zeros_like(logp), jnp.ones_like(logp),
                         jnp.array([[1.0, 0.0]]))
    assert float(g[0, 0, 0]) == 0.0
    np.testing.assert_allclose(float(g[0, 0, 1]), -self.A * np.exp((0.4 + 0.1) / 2) / 2 / 2,
                               rtol=1e-12)

  @pytest.mark.parametrize("s", [-4.0, 0.0, 4.0])
  def test_gpg_weight_is_constant(self, s):
    np.testing.assert_allclose(_one_group_grad("gpg", s, 1.0), -0.5 / 2, rtol=1e-14)
    np.testing.assert_allclose(_one_group_grad("gpg", s, 0.0), 0.5 / 2, rtol=1e-14)

  @pytest.mark.x64
  def test_dual_clip_bounds_negatives_only(self):
    c = 3.0
    # A < 0: alive above 1 + eps up to c, cut beyond c (and below 1 - eps, as GRPO).
    np.testing.assert_allclose(_one_group_grad("grpo", np.log(2.5), 0.0, clip_ratio_c=c),
                               self.A * 2.5 / 2, rtol=1e-12)
    assert _one_group_grad("grpo", np.log(3.5), 0.0, clip_ratio_c=c) == 0.0
    assert _one_group_grad("grpo", np.log(0.7), 0.0, clip_ratio_c=c) == 0.0
    # A > 0 is untouched by c.
    assert _one_group_grad("grpo", np.log(0.5), 1.0, clip_ratio_c=c) == \
        _one_group_grad("grpo", np.log(0.5), 1.0)

  def test_dual_clip_counts_in_clip_fraction(self):
    logp = jnp.array([[[np.log(4.0)], [0.0]]])
    _, aux = jitted("dapo", clip_ratio_c=3.0)(logp, jnp.zeros_like(logp), jnp.ones_like(logp),
                                               jnp.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(aux.rollout_clip_fraction, [[1.0, 0.0]])


# ------------------------------------------------------- extreme inputs ----


class TestDPPOTrustRegionBothWays:
  """DPPO drops a token only past its threshold, only in the direction A pushes it."""

  @pytest.mark.x64
  @pytest.mark.parametrize("divergence", ["tv", "kl"])
  def test_against_numpy_on_both_sides_of_both_thresholds(self, divergence):
    eps_low, eps_high = 0.1, 0.2  # unequal, so that swapping them is seen
    old = np.array([0.05, 0.3, 0.6, 0.9])[:, None]
    new = np.linspace(0.001, 0.999, 999)[None, :]
    old, new = np.broadcast_arrays(old, new)
    if divergence == "tv":
      push_up_ok = new - old <= eps_high
      push_down_ok = new - old >= -eps_low
    else:
      d = old * np.log(old / new) + (1 - old) * np.log((1 - old + 1e-8) / (1 - new + 1e-8))
      push_up_ok = (d <= eps_high) | (new <= old)
      push_down_ok = (d <= eps_low) | (new >= old)
    for a, want in ((1.0, push_up_ok), (-1.0, push_down_ok), (0.0, push_down_ok)):
      got = losses.dppo_kept(jnp.log(new), jnp.log(old), jnp.full(new.shape, a),
                             divergence=divergence, epsilon_low=eps_low, epsilon_high=eps_high)
      np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"A = {a}")
      # Both outcomes occur, and a drop happens only where the token moved with A.
      assert want.any() and (~want).any()
      moved_with_a = (new > old) if a > 0 else (new < old)
      assert not (~want & ~moved_with_a).any()


  @pytest.mark.x64
  @pytest.mark.parametrize("name", ["dppo_tv", "dppo_kl"])
  def test_the_loss_reports_the_dropped_tokens_and_only_them(self, name):
    # The aux's fractions count the response tokens outside the trust region:
    # a token inside it, or off the response, is never counted.
    logp, old, mask, rewards = batches.random_batch(31, score_scale=1.0)
    adv = reference.advantages(mask, rewards)
    kw = dict(epsilon_low=0.1, epsilon_high=0.2)
    kept = np.asarray(losses.dppo_kept(
        jnp.asarray(np.where(mask, logp, 0.0)), jnp.asarray(np.where(mask, old, 0.0)),
        jnp.asarray(adv)[..., None], divergence=name[-2:], **kw))
    dropped = mask & ~kept
    assert dropped.any() and (mask & kept).any()
    _, aux = jitted(name, **kw)(*map(jnp.asarray, (logp, old, mask, rewards)))
    np.testing.assert_allclose(float(aux.clip_fraction), dropped.sum() / mask.sum(), rtol=1e-12)
    per_rollout = dropped.sum(-1) / np.maximum(mask.sum(-1), 1)
    np.testing.assert_allclose(np.asarray(aux.rollout_clip_fraction), per_rollout, rtol=1e-12)

class TestExtremes:

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.parametrize("dtype", [np.float32, np.float64])
  def test_huge_scores_small_tau(self, name, dtype):
    logp, old, mask, rewards = batches.random_batch(20, dtype=dtype)
    sign = np.sign(np.random.default_rng(3).normal(size=logp.shape))
    logp = np.where(mask, 1e4 * sign, np.nan).astype(dtype)
    old = np.where(mask, 0.0, -np.inf).astype(dtype)
    kwargs = {"tau": 0.05} if name in LABEL else {}
    loss, g = loss_and_grad(name, *map(jnp.asarray, (logp, old, mask, rewards)), **kwargs)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(g))
    # Scores of +-1e4 are exact in float32, so float32 must give float64's
    # answer to float32 precision (float64 meets the NumPy reference wherever
    # that reference, written without log-space tricks, is finite).
    wide = loss_and_grad(name, *(jnp.asarray(x, jnp.float64) for x in (logp, old, mask, rewards)),
                         **kwargs)
    np.testing.assert_allclose(float(loss), float(wide[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.where(mask, g, 0.0), np.where(mask, wide[1], 0.0),
                               rtol=1e-5, atol=1e-6 * float(np.max(np.abs(wide[1]))))

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.parametrize("G", [1, 256])
  def test_group_sizes(self, name, G):
    logp, old, mask, rewards = batches.random_batch(21, B=2, G=G, T=3, kinds=("mixed",),
                                                    dtype=np.float32)
    loss, g = loss_and_grad(name, *map(jnp.asarray, (logp, old, mask, rewards)))
    assert np.isfinite(float(loss)) and np.all(np.isfinite(g))
    if G == 1 and name not in PENALISED:  # a single rollout can never be contrasted
      assert float(loss) == 0.0
    else:
      np.testing.assert_allclose(float(loss), reference.loss(name, logp, old, mask, rewards),
                                 rtol=1e-4)


# ----------------------------------------------------------- bad input ----


class TestBadInput:
  shape = (2, 3, 4)

  def args(self, **override):
    z = jnp.zeros(self.shape)
    a = dict(logp=z, old_logp=z, mask=jnp.ones(self.shape), rewards=jnp.array([[1., 0., 1.], [0., 0., 1.]]))
    a.update(override)
    return a

  @pytest.mark.parametrize("name", ALL)
  @pytest.mark.parametrize("override, match", [
      (dict(logp=jnp.zeros((3, 4))), "`logp` must have rank 3"),
      (dict(old_logp=jnp.zeros((2, 3, 5))), "`old_logp` must have the shape"),
      (dict(mask=jnp.ones((2, 3))), "`mask` must have the shape"),
      (dict(rewards=jnp.zeros((2, 4))), r"`rewards` must have shape \[B, G\]"),
  ])
  def test_shapes(self, name, override, match):
    with pytest.raises(ValueError, match=match):
      losses.get(name)(**self.args(**override))

  @pytest.mark.parametrize("name", ALL)
  def test_integer_logp(self, name):
    with pytest.raises(TypeError, match="`logp` must be a float array"):
      losses.get(name)(**self.args(logp=jnp.zeros(self.shape, jnp.int32)))

  @pytest.mark.parametrize("name", LABEL)
  @pytest.mark.parametrize("tau", [0.0, -0.5, float("nan")])
  def test_bad_tau(self, name, tau):
    with pytest.raises(ValueError, match="`tau`"):
      losses.get(name)(**self.args(), tau=tau)

  @pytest.mark.parametrize("name", LABEL)
  def test_non_binary_rewards(self, name):
    # The message names the offending values, and only them.
    with pytest.raises(ValueError, match=r"`rewards` must be 0 or 1.* such as \[0\.5, 2\.0\]\.$"):
      losses.get(name)(**self.args(rewards=jnp.array([[0.5, 0., 1.], [0., 2., 1.]])))

  @pytest.mark.parametrize("name", CLIPPED)
  @pytest.mark.parametrize("kwarg", ["epsilon_low", "epsilon_high", "beta"])
  def test_negative_hyperparameters(self, name, kwarg):
    with pytest.raises(ValueError, match=f"`{kwarg}` must be >= 0"):
      losses.get(name)(**self.args(), **{kwarg: -0.1})

  @pytest.mark.parametrize("name, kwarg, value, match", [
      ("sapo", "tau_pos", 0.0, "`tau_pos` must be > 0"),
      ("sapo", "tau_neg", -1.0, "`tau_neg` must be > 0"),
      ("cispo", "epsilon_low", -0.1, "`epsilon_low` must be >= 0"),
      ("cispo", "epsilon_high", -0.1, "`epsilon_high` must be >= 0"),
      ("gmpo", "epsilon_high", -0.1, "`epsilon_high` must be >= 0"),
      ("grpo", "clip_ratio_c", 1.0, "`clip_ratio_c` must be a number > 1"),
      ("dapo", "clip_ratio_c", float("nan"), "`clip_ratio_c` must be a number > 1"),
      ("gpg", "advantage", "ppo", "`advantage` must be one of grpo, rloo, drgrpo"),
      ("grpo", "advantage", "gae", "`advantage` must be one of grpo, rloo, drgrpo"),
  ])
  def test_bad_hyperparameters_of_the_new_objectives(self, name, kwarg, value, match):
    with pytest.raises(ValueError, match=match):
      losses.get(name)(**self.args(), **{kwarg: value})

  @pytest.mark.parametrize("name, kwarg, value, match", [
      ("grpo", "delta", 1.0, "`delta` must be a number > 1"),
      ("luspo", "delta", float("inf"), "`delta` must be a number > 1"),
      ("grpo", "positive_nll", -0.1, "`positive_nll` must be >= 0"),
      ("dro", "dro_beta", 0.0, "`dro_beta` must be > 0"),
      ("dppo_tv", "epsilon_high", 0.0, "`epsilon_high` must be > 0"),
      ("dppo_kl", "tis_cap", -1.0, "`tis_cap` must be > 0"),
      ("clip_cov", "clip_cov_ratio", 1.5, "`clip_cov_ratio` must be a fraction"),
      ("clip_cov", "clip_cov_lb", 6.0, "`clip_cov_lb` must be below `clip_cov_ub`"),
      ("kl_cov", "kl_cov_ratio", 0.0, "`kl_cov_ratio` must be > 0"),
      ("kl_cov", "ppo_kl_coef", -1.0, "`ppo_kl_coef` must be >= 0"),
      ("vespo", "k_pos", 0.0, "`k_pos` must be > 0"),
      ("vespo", "lambda_neg", float("nan"), "`lambda_neg` must be finite"),
      ("vespo", "advantage", "reinforce++", "`advantage` must be one of"),
  ])
  def test_bad_hyperparameters_of_atlas_two(self, name, kwarg, value, match):
    with pytest.raises(ValueError, match=match):
      losses.get(name)(**self.args(), **{kwarg: value})

  @pytest.mark.parametrize("name", AGGREGATED)
  def test_unknown_aggregation(self, name):
    with pytest.raises(ValueError, match="`loss_agg_mode` must be one of token-mean"):
      losses.get(name)(**self.args(), loss_agg_mode="token-sum")

  def test_kl_needs_reference_and_known_type(self):
    with pytest.raises(ValueError, match="`ref_logp`"):
      losses.grpo(**self.args(), beta=0.1)
    with pytest.raises(ValueError, match="`ref_logp` must have the shape"):
      losses.grpo(**self.args(), beta=0.1, ref_logp=jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="`kl_type` must be one of"):
      losses.grpo(**self.args(), kl_type="k4")

  def test_the_families_partition_the_losses_by_what_they_take(self):
    # Read from the signatures, not the registry's labels: a label-based loss
    # takes a temperature `tau`, an advantage-weighted one an `advantage`
    # estimator; every loss is exactly one of them.
    takes = {n: set(losses.hyperparameters(n)) for n in losses.LOSSES}
    assert set(losses.LABEL_LOSSES) == {n for n, h in takes.items() if "tau" in h}
    assert set(losses.ADVANTAGE_LOSSES) == {n for n, h in takes.items() if "advantage" in h}
    assert set(losses.LABEL_LOSSES) | set(losses.ADVANTAGE_LOSSES) == set(losses.LOSSES)
    assert not set(losses.LABEL_LOSSES) & set(losses.ADVANTAGE_LOSSES)
    assert set(losses.CLIPPED_LOSSES) < set(losses.ADVANTAGE_LOSSES)

  def test_defaults_are_the_settable_scalars(self):
    # GRPO's, as verl's actor config sets them; a default of None (no dual
    # clip, no delta, no reference, no fixed horizon) is no setting to report.
    assert losses.defaults("grpo") == {
        "epsilon_low": 0.2, "epsilon_high": 0.2, "advantage": "grpo",
        "loss_agg_mode": "seq-mean-token-mean", "beta": 0.0, "kl_type": "low_var_kl",
        "max_log_ratio": 20.0, "positive_nll": 0.0}
    for name in losses.LOSSES:
      d = losses.defaults(name)
      assert set(d) <= set(losses.hyperparameters(name)), name
      assert None not in d.values(), name
      assert "ref_logp" not in d and "logp" not in d, name

  def test_unknown_loss_lists_known(self):
    # Every name, sorted, read from the registry: adding an objective edits no test.
    assert len(losses.LOSSES) >= 20 and {"real", "grpo", "topr"} <= set(losses.LOSSES)
    with pytest.raises(ValueError) as e:
      losses.get("ppo")
    assert f"known losses: {', '.join(sorted(losses.LOSSES))} (" in str(e.value)

  def test_traced_hyperparameters_are_accepted(self):
    # Under vmap over tau the check is skipped rather than failing to trace.
    args = self.args()
    taus = jnp.array([0.25, 0.5, 1.0])
    got = jax.vmap(lambda t: losses.real(**args, tau=t)[0])(taus)
    for t, v in zip(taus, got, strict=True):
      np.testing.assert_allclose(float(v), float(losses.real(**args, tau=float(t))[0]), rtol=1e-6)
