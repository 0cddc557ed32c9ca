"""Tests of `real_jax.grad_analysis`: closed forms, chain rule, sympy, the command."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import subprocess
import sys

import batches
from flax import nnx
import jax
import jax.numpy as jnp
from numerics import EDGE_BAND
from numerics import TOLERANCE
import numpy as np
import pytest
import sympy

from real_jax import grad_analysis as ga
from real_jax import losses
from real_jax import model
from real_jax.grad_analysis import _cases
from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis import _properties
from real_jax.grad_analysis import _stats
from real_jax.grad_analysis import _sweep

LABEL = losses.LABEL_LOSSES
CLIPPED = losses.CLIPPED_LOSSES
ADVANTAGE = tuple(cf.CONFIGURATIONS)
AGGREGATED = tuple(n for n in ADVANTAGE
                   if "loss_agg_mode" in losses.hyperparameters(cf.configuration(n)[0]))


def test_tolerances_are_the_pinned_ones():
  assert ga.TOLERANCE == TOLERANCE
  assert _properties.EDGE_BAND == EDGE_BAND


def _max_rel(a, b, floor=1e-300):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  big = np.abs(b) > floor
  return float(np.max(np.where(big, np.abs(a - b) / np.where(big, np.abs(b), 1), np.abs(a - b))))


# ------------------------------------------------ closed form vs autodiff ----


class TestClosedFormsAgainstAutodiff:

  @pytest.mark.parametrize("name", LABEL)
  @pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
  @pytest.mark.x64
  def test_label_rollout_weights(self, name, tau):
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(30, B=6, G=6, T=5))
    auto = jax.jit(functools.partial(ga.rollout_weights, name, tau=tau))(logp, old, mask, rewards)
    closed = cf.label_weights(name, logp, old, mask, rewards, tau=tau)
    assert _max_rel(auto, closed.weights) < 1e-12
    # Every token of rollout k carries W_k / |o_k| (the chain rule through sbar).
    g = ga.token_gradients(name, logp, old, mask, rewards, tau=tau)
    per_token = closed.weights[..., None] * mask / jnp.maximum(mask.sum(-1, keepdims=True), 1)
    np.testing.assert_allclose(g, per_token, rtol=1e-12, atol=1e-300)

  @pytest.mark.parametrize("name", AGGREGATED)
  @pytest.mark.parametrize("mode", losses.AGG_MODES)
  @pytest.mark.x64
  def test_token_weights_in_every_aggregation_mode(self, name, mode):
    # Log-ratios up to +-0.6 (x3 for CISPO's and the dual clip's wider edges)
    # put tokens on both sides of every clip edge.
    scale = 1.8 if name in ("cispo", "grpo_dual_clip") else 0.6
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(31, B=5, G=6, T=6,
                                                                     score_scale=scale))
    loss, kwargs = cf.configuration(name)[0], cf.configuration_kwargs(name, loss_agg_mode=mode)
    auto = ga.token_gradients(loss, logp, old, mask, rewards, **kwargs)
    closed = cf.advantage_weights(name, logp, old, mask, rewards, loss_agg_mode=mode)
    assert _max_rel(auto, closed.token_weights) < 1e-12
    # Both regimes exercised, where there are two: SAPO, GPG, DRO and VESPO
    # have no clip, and pass@k credits too few rollouts to reach one.
    if name not in ("sapo", "gpg", "dro", "vespo", "topr", "grpo_passk"):
      assert 0 < int(closed.clipped.sum()) < int(mask.sum())

  @pytest.mark.x64
  def test_gmpo_token_weights(self):
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(33, B=5, G=6, T=6,
                                                                     score_scale=0.6))
    auto = ga.token_gradients("gmpo", logp, old, mask, rewards)
    closed = cf.advantage_weights("gmpo", logp, old, mask, rewards)
    assert _max_rel(auto, closed.token_weights) < 1e-12
    assert 0 < int(closed.clipped.sum()) < int(mask.sum())

  @pytest.mark.parametrize("name, overrides", [
      *((n, {}) for n in AGGREGATED + ("gmpo",)),
      ("cispo", {"epsilon_low": 0.2, "epsilon_high": 0.28})])  # a lower clip as well
  @pytest.mark.x64
  def test_the_loss_reports_the_closed_forms_clipped_tokens(self, name, overrides):
    # The aux's clip fractions count exactly the tokens the closed form says
    # are clipped: inside the clip range never, padding never, and tokens cut
    # on either side (GMPO: only on the side its sign-aware clip binds).
    scale = 1.8 if name in ("cispo", "grpo_dual_clip", "grpo_delta") else 0.6
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(34, B=5, G=6, T=6,
                                                                     score_scale=scale))
    loss, kwargs = cf.configuration(name)[0], cf.configuration_kwargs(name, **overrides)
    _, aux = losses.get(loss)(logp, old, mask, rewards, **kwargs)
    clipped = np.asarray(cf.advantage_weights(name, logp, old, mask, rewards, **overrides).clipped)
    m = np.asarray(mask)
    np.testing.assert_allclose(float(aux.clip_fraction), clipped.sum() / m.sum(), rtol=1e-12)
    per_rollout = clipped.sum(-1) / np.maximum(m.sum(-1), 1)
    np.testing.assert_allclose(np.asarray(aux.rollout_clip_fraction), per_rollout, rtol=1e-12)
    if name not in ("sapo", "gpg", "dro", "vespo", "topr", "grpo_passk"):
      assert 0 < clipped.sum() < m.sum()

  @pytest.mark.x64
  def test_no_token_off_the_response_is_near_an_edge(self):
    # Padding holds the ratio 1, which DPPO-TV's and GMPO's edges need not
    # avoid: the edge mask is a boolean mask of response tokens only.
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(35, B=4, G=5, T=6,
                                                                     score_scale=0.6))
    for name in ADVANTAGE:
      edge = cf.advantage_weights(name, logp, old, mask, rewards).edge
      assert edge.dtype == jnp.bool_, name
      assert not np.asarray(edge)[~np.asarray(mask)].any(), name

  @pytest.mark.parametrize("tau_g", [0.5, 1.0, 1.05, 4.0])
  def test_sapo_gate_bound_is_the_supremum(self, tau_g):
    rho = np.linspace(1e-6, 1 + 60 / tau_g, 2_000_001)
    x = tau_g * (rho - 1)
    brute = np.max(4 * rho / (2 + np.exp(x) + np.exp(-x)))
    np.testing.assert_allclose(cf.sapo_gate_bound(tau_g), brute, rtol=1e-9)

  @pytest.mark.x64
  def test_aggregation_scales(self):
    # One token per rollout, one group {1, 0}: each mode's factor by hand.
    mask = jnp.ones((1, 2, 3), bool).at[0, 1, 1:].set(False)  # lengths 3 and 1
    cases = {"token-mean": [1 / 4] * 3 + [1 / 4], "seq-mean-token-mean": [1 / 6] * 3 + [1 / 2],
             "seq-mean-token-sum": [1 / 2] * 3 + [1 / 2], "seq-mean-token-sum-norm": [1 / 3] * 4}
    for mode, want in cases.items():
      f = cf.aggregation_factor(mask, mode, jnp.float64)
      np.testing.assert_allclose(np.asarray(f)[np.asarray(mask)], want, rtol=1e-15)

  def test_dr_grpo_fixed_horizon(self):
    logp, old, mask, rewards = map(jnp.asarray, batches.random_batch(32, B=3, G=4, T=5))
    auto = ga.token_gradients("dr_grpo", logp, old, mask, rewards, norm_length=16.0)
    closed = cf.advantage_weights("dr_grpo", logp, old, mask, rewards, norm_length=16.0)
    assert _max_rel(auto, closed.token_weights) < 1e-12

  @pytest.mark.parametrize("name", CLIPPED + ("sapo",))
  @pytest.mark.parametrize("s, reward", [(25.0, 0.0), (-25.0, 1.0), (25.0, 1.0), (-25.0, 0.0)])
  def test_beyond_log_ratio_clamp_weight_is_zero(self, name, s, reward):
    # The clamp is symmetric (|s| < 20): beyond it on either side, for a
    # rollout of either sign, the weight is 0.
    logp = jnp.array([[[s], [0.0]]])
    rewards = jnp.array([[reward, 1.0 - reward]])
    ones = jnp.ones_like(logp)
    auto = ga.token_gradients(name, logp, jnp.zeros_like(logp), ones, rewards)
    closed = cf.advantage_weights(name, logp, jnp.zeros_like(logp), ones, rewards)
    assert float(auto[0, 0, 0]) == 0.0 and float(closed.token_weights[0, 0, 0]) == 0.0
    # Just inside the clamp the two agree, and where the clip is open (a
    # negative pushed up, a positive pushed down) the weight is not 0.
    inside = logp.at[0, 0, 0].set(np.sign(s) * 19.0)
    auto = ga.token_gradients(name, inside, jnp.zeros_like(logp), ones, rewards)
    closed = cf.advantage_weights(name, inside, jnp.zeros_like(logp), ones, rewards)
    np.testing.assert_allclose(float(auto[0, 0, 0]), float(closed.token_weights[0, 0, 0]),
                               rtol=1e-5, atol=1e-30)
    if name in CLIPPED and (s > 0) == (reward == 0.0):  # SAPO's gate underflows there
      assert float(auto[0, 0, 0]) != 0.0

  @pytest.mark.x64
  def test_real_on_policy_weights_and_constants(self):
    # sbar = 0: C+ = |O+|, C- = |O-|, |W| = 1 / (tau (1 + |O+-|)).
    tau = 0.5
    rewards = jnp.array([[1.0, 1.0, 1.0, 0.0, 0.0]])
    z = jnp.zeros((1, 5, 3))
    closed = cf.label_weights("real", z, z, jnp.ones_like(z), rewards, tau=tau)
    np.testing.assert_allclose(closed.c_plus[0, :3], 3.0, rtol=1e-15)
    np.testing.assert_allclose(closed.c_minus[0, 3:], 2.0, rtol=1e-15)
    np.testing.assert_allclose(closed.group_weights[0], [-1 / (tau * 4)] * 3 + [1 / (tau * 3)] * 2,
                               rtol=1e-14)

  @pytest.mark.parametrize("scale", [0.1, 10.0, 400.0])
  @pytest.mark.x64
  def test_log_sum_others_against_brute_force(self, scale):
    rng = np.random.default_rng(int(scale))
    z = rng.normal(size=(64, 16)) * scale
    members = rng.random((64, 16)) < rng.choice([0.1, 0.5, 1.0], size=(64, 1))
    got = np.asarray(jax.vmap(cf._log_sum_others)(jnp.asarray(z), jnp.asarray(members)))
    for i, k in itertools.product(range(64), range(16)):
      others = [z[i, j] for j in range(16) if members[i, j] and j != k]
      want = np.logaddexp.reduce([0.0] + others)
      assert abs(got[i, k] - want) <= 1e-13 * max(1.0, abs(want)), (i, k, got[i, k], want)


# ------------------------------------------------- chain rule to parameters ----


class TestChainRuleToParameters:
  """d loss / d theta = sum_k W_k / |o_k| sum_t grad log pi(o_{k,t}) (docs/derivations.md, section 6)."""

  B, G, PROMPT, RESPONSE, VOCAB = 2, 4, 3, 5, 7

  def setup_policy(self):
    cfg = model.PolicyConfig(vocab_size=self.VOCAB, max_len=self.PROMPT + self.RESPONSE,
                             width=16, depth=2, heads=2, param_dtype=jnp.float64,
                             dtype=jnp.float64)
    graphdef, params = nnx.split(model.Policy(cfg, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(0, self.VOCAB, (self.B * self.G, self.PROMPT + self.RESPONSE)))
    lengths = rng.integers(1, self.RESPONSE + 1, (self.B, self.G))
    mask = jnp.asarray(np.arange(self.RESPONSE) < lengths[..., None])

    def logp_fn(p):
      logp, _ = model.token_logprobs(model.apply(graphdef, p, tokens), tokens)
      return logp[:, self.PROMPT - 1:].reshape(self.B, self.G, self.RESPONSE)

    old = jax.lax.stop_gradient(logp_fn(params)) + 0.3 * jnp.asarray(
        rng.normal(size=(self.B, self.G, self.RESPONSE)))
    rewards = jnp.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    return params, logp_fn, old, mask, rewards

  @pytest.mark.parametrize("name", ["real", "grpo", "cispo"])
  @pytest.mark.x64
  def test_parameter_gradient(self, name):
    params, logp_fn, old, mask, rewards = self.setup_policy()
    loss = losses.get(name)
    autodiff = jax.jit(jax.grad(lambda p: loss(logp_fn(p), old, mask, rewards)[0]))(params)

    logp = jax.jit(logp_fn)(params)
    if name == "real":
      w = cf.label_weights("real", logp, old, mask, rewards).weights
      token_w = w[..., None] * mask / mask.sum(-1, keepdims=True)
    else:
      token_w = cf.advantage_weights(name, logp, old, mask, rewards).token_weights
    # grad_theta log pi(o_{k,t}) for every token separately: the Jacobian.
    per_token = jax.jit(jax.jacrev(logp_fn))(params)
    built = jax.tree.map(
        lambda j: jnp.tensordot(token_w, j, axes=token_w.ndim), per_token)
    flat_a, _ = jax.flatten_util.ravel_pytree(autodiff)
    flat_b, _ = jax.flatten_util.ravel_pytree(built)
    assert float(jnp.linalg.norm(flat_a)) > 1e-6
    np.testing.assert_allclose(flat_b, flat_a, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------- symbolic ----


def _symbolic_cases():
  for G in (2, 3, 4):
    for n_pos in range(1, G):
      yield G, n_pos


class TestSymbolic:
  """sympy differentiates each label-based group loss; it simplifies to the closed form.

  Scores are written as s_i = tau log x_i with x_i > 0, so exp(+-s_i/tau) are
  rational in x and `cancel` decides equality exactly; d/ds_k = (x_k/tau) d/dx_k.
  """

  @staticmethod
  def losses_and_closed_forms(G, n_pos):
    x = sympy.symbols(f"x0:{G}", positive=True)
    tau = sympy.Symbol("tau", positive=True)
    pos, neg = list(range(n_pos)), list(range(n_pos, G))
    e_neg = {i: 1 / x[i] for i in pos}  # exp(-s_i / tau)
    e_pos = {j: x[j] for j in neg}      # exp(+s_j / tau)
    P, N = sum(e_neg.values()), sum(e_pos.values())
    loss = {
        "real": sympy.log(1 + P) + sympy.log(1 + N),
        "grad": sympy.log(1 + P),
        "bce": sum(sympy.log(1 + e_neg[i]) for i in pos) + sum(sympy.log(1 + e_pos[j]) for j in neg),
        "real_product": sympy.log(1 + sum(x[j] / x[i] for i in pos for j in neg)),
    }
    closed = {name: [] for name in loss}
    for k in range(G):
      if k in pos:
        c_plus = 1 + sum(e_neg[i] for i in pos if i != k)
        closed["real"].append(-1 / (tau * (1 + c_plus * x[k])))
        closed["grad"].append(-(1 / x[k]) / (tau * (1 + P)))  # the seed form
        closed["bce"].append(-1 / (tau * (1 + x[k])))
        closed["real_product"].append(-N * (1 / x[k]) / (tau * (1 + N * P)))
      else:
        c_minus = 1 + sum(e_pos[j] for j in neg if j != k)
        closed["real"].append(1 / (tau * (1 + c_minus / x[k])))
        closed["grad"].append(sympy.Integer(0))
        closed["bce"].append(1 / (tau * (1 + 1 / x[k])))
        closed["real_product"].append(P * x[k] / (tau * (1 + N * P)))
    return x, tau, loss, closed

  @pytest.mark.parametrize("G, n_pos", list(_symbolic_cases()))
  def test_derivatives_simplify_to_closed_forms(self, G, n_pos):
    x, tau, loss, closed = self.losses_and_closed_forms(G, n_pos)
    for name in loss:
      for k in range(G):
        d_ds = x[k] / tau * sympy.diff(loss[name], x[k])
        assert sympy.cancel(sympy.together(d_ds - closed[name][k])) == 0, (name, k)

  @pytest.mark.parametrize("G, n_pos", [(3, 1), (4, 2)])
  @pytest.mark.x64
  def test_symbolic_closed_forms_equal_the_code(self, G, n_pos):
    x, tau, _, closed = self.losses_and_closed_forms(G, n_pos)
    rng = np.random.default_rng(G * 10 + n_pos)
    s = rng.normal(size=G)
    t = 0.7
    subs = {tau: t, **{x[i]: np.exp(s[i] / t) for i in range(G)}}
    positive = jnp.arange(G) < n_pos
    for name, form in cf.LABEL_FORMS.items():
      code = form.group(jnp.asarray(s), positive, ~positive, t).weights
      want = [float(c.subs(subs)) for c in closed[name]]
      np.testing.assert_allclose(code, want, rtol=1e-12, atol=1e-300)


# ----------------------------------------------------- sweep and command ----


class TestSweep:

  def test_runs_on_the_callers_default_device(self):
    # The sweep traces, compiles and runs on threads of its own, while the
    # caller's `jax.default_device` is a setting of the calling thread only.
    script = """
import jax
from real_jax.grad_analysis import _cases
from real_jax.grad_analysis import _sweep
device = jax.devices("cpu")[1]
seen = set()
make_cases = _cases.make_cases
def spy(*args, **kwargs):
  cases = make_cases(*args, **kwargs)
  seen.update(cases["logp"].devices())
  return cases
_cases.make_cases = spy
with jax.default_device(device):
  result = _sweep.run_sweep(8, ("float32",), chunk=2, objectives=("grpo",),
                            progress=lambda _: None)
assert seen == {device}, seen
assert result.passed
print("ok")
"""
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
               + " --xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]

  def test_monotonic_verdict_can_fail(self):
    grid = np.linspace(0, 1, 50)[None]
    decreasing, increasing = np.exp(-grid), np.exp(grid)
    ok = _properties.monotonic_verdict("real", "positive", decreasing, decreasing, jnp.float64)
    bad = _properties.monotonic_verdict("real", "positive", increasing, decreasing, jnp.float64)
    assert ok["monotonic"] and not bad["monotonic"]
    # SAPO is peaked: a monotonic curve, or one with two bumps, is not.
    peak = np.exp(-(grid - 0.5) ** 2 * 20)
    two = peak + np.exp(-(grid - 0.9) ** 2 * 200)
    assert _properties.monotonic_verdict("sapo", "positive", peak, peak, jnp.float64)["monotonic"]
    assert not _properties.monotonic_verdict("sapo", "positive", increasing, increasing,
                                        jnp.float64)["monotonic"]
    assert not _properties.monotonic_verdict("sapo", "positive", two, peak, jnp.float64)["monotonic"]
    # GPG is constant.
    flat = np.ones_like(grid)
    assert _properties.monotonic_verdict("gpg", "negative", flat, flat, jnp.float64)["monotonic"]
    assert not _properties.monotonic_verdict("gpg", "negative", increasing, flat,
                                        jnp.float64)["monotonic"]

  def test_valley_verdict_can_fail(self):
    # DRO's |1 - beta s / A| falls to its zero, then rises; a peak or a ramp is not that.
    grid = np.linspace(0, 1, 50)[None]
    valley = np.abs(grid - 0.6) + 1e-3
    assert _properties.monotonic_verdict("dro", "positive", valley, valley, jnp.float64)["monotonic"]
    assert not _properties.monotonic_verdict("dro", "positive", 1 - valley, valley,
                                        jnp.float64)["monotonic"]
    assert not _properties.monotonic_verdict("dro", "positive", grid + 1e-3, grid + 1e-3,
                                        jnp.float64)["monotonic"]

  def test_a_missing_penalty_fails_on_the_tokens_with_zero_advantage(self, monkeypatch):
    # Drop DRO's beta s from the closed form: every token still has its -A, so
    # only the comparison of the tokens with A = 0 (and the others' sums) can see it.
    right = cf.advantage_weights

    def without_penalty(*args, **kwargs):
      w = right(*args, **kwargs)
      return w._replace(token_weights=w.token_weights - w.penalty)
    jax.clear_caches()
    monkeypatch.setattr(cf, "advantage_weights", without_penalty)
    try:
      result = ga.run_sweep(64, ("float64",), chunk=16, objectives=("dro",), progress=lambda _: None)
    finally:
      jax.clear_caches()
    assert not result.passed
    assert not result.neutral["dro"]["float64"]["passed"]
    assert result.neutral["dro"]["float64"]["moving"] > 100

  @pytest.mark.x64
  def test_a_batch_advantage_rounding_residue_is_not_an_error_but_a_weight_is(self):
    # REINFORCE++ whitens over the batch: a group whose rewards are all equal
    # has A = 0 in exact arithmetic, and each side may round it to its own
    # ~eps*max|A| (on a GPU the loss's and the closed form's copies were fused
    # differently: 1e-19 against 1e-20, a relative error of 1, a FAIL).
    # One case, [1, B=2, G=3, T=2], every token present: group 0 has one right
    # answer in three (c = 2/3, -1/3, -1/3, whose sum rounds), group 1 none, so
    # the batch mean and group 1's advantages are 0 in exact arithmetic.
    rng = np.random.default_rng(0)
    old = jnp.asarray(rng.normal(-2.0, 0.5, (1, 2, 3, 2)))
    logp = old + jnp.asarray(rng.uniform(-0.1, 0.1, old.shape))
    mask = jnp.ones(old.shape, bool)
    rewards = jnp.asarray([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    auto, closed = _stats._advantage_weights("grpo_reinforce_pp", logp, old, mask, rewards)
    assert float(jnp.max(jnp.abs(closed.advantages[:, 1]))) < 1e-12  # a residue, or 0
    assert float(jnp.max(jnp.abs(closed.advantages))) > 0.5
    rest = jnp.zeros(mask.shape, bool).at[:, 1].set(True)

    def stats(auto):
      return _stats._advantage_stats(auto, closed, mask, with_share=False)

    assert max(float(stats(auto)[s]["max_rel_err"]) for s in _cases.SIGNS) < TOLERANCE["float64"]
    residue = jnp.where(rest, auto + 1e-19, auto)
    out = stats(residue)
    worst = max(float(out[s]["max_rel_err"]) for s in (*_cases.SIGNS, "neutral"))
    assert worst < TOLERANCE["float64"]
    # A weight the size of a real rollout's on the same tokens is still an error.
    weight = jnp.where(rest, auto + closed.agg[..., None] * 1.0, auto)
    out = stats(weight)
    assert max(float(out[s]["max_rel_err"]) for s in (*_cases.SIGNS, "neutral")) > 0.05

  @pytest.mark.x64
  def test_a_wrong_closed_form_fails_the_sweep(self, monkeypatch):
    right = cf.LABEL_FORMS["real"].group

    def off_by_a_little(*args):
      w = right(*args)
      return w._replace(weights=w.weights * (1 + 1e-6))
    jax.clear_caches()
    monkeypatch.setitem(cf.LABEL_FORMS, "real",
                        dataclasses.replace(cf.LABEL_FORMS["real"], group=off_by_a_little))
    try:
      result = ga.run_sweep(64, ("float64",), chunk=16, objectives=("real",), progress=lambda _: None)
    finally:
      jax.clear_caches()
    row = result.table["real"]["positive"]["float64"]
    assert not row["passed"]
    np.testing.assert_allclose(row["max_rel_err"], 1e-6, rtol=1e-3)

  def test_runner_threads_change_nothing_and_figures_get_the_curves(self, monkeypatch):
    # Several threads run a program's chunks in whatever order they finish;
    # the probe curves and the shares are put back in chunk order.
    def sweep(runners):
      monkeypatch.setattr(_sweep, "RUNNERS", runners)
      handed = []
      result = ga.run_sweep(256, ("float64",), chunk=16, objectives=("real", "grpo"),
                            progress=lambda _: None, on_figure_curves=handed.append)
      assert len(handed) == 1
      return result, handed[0]
    one, curves_one = sweep(1)
    three, curves_three = sweep(3)
    for got in (curves_one, curves_three, three.figure_curves):
      for name, by_sign in one.figure_curves.items():
        for sign, arrays in by_sign.items():
          for a, b in zip(arrays, got[name][sign], strict=True):
            np.testing.assert_array_equal(a, b)
    assert one.table == three.table and one.properties == three.properties
    assert one.domination == three.domination and one.identities == three.identities

  @pytest.mark.x64
  def test_domination_summary_against_numpy(self):
    # The sweep's first chunk rebuilt, REAL's per-rollout weights by autodiff,
    # and the top-negative shares and their summary computed here in NumPy.
    result = ga.run_sweep(64, ("float64",), chunk=16, objectives=("real",),
                          progress=lambda _: None)
    cases = _cases.make_cases(_cases.case_rng(0, 0), 16, jnp.float64)
    weights = jax.vmap(lambda lp, olp, m, r, t: ga.rollout_weights("real", lp, olp, m, r, tau=t))(
        cases["logp"], cases["old_logp"], cases["mask"], cases["rewards"], cases["tau"])
    g = weights.shape[-1]
    weights = np.abs(np.asarray(weights)).reshape(-1, g)
    wrong = (np.asarray(cases["mask"]).any(-1) & (np.asarray(cases["rewards"]) == 0)).reshape(-1, g)
    shares = np.array([w[n].max() / w[n].sum() for w, n in zip(weights, wrong, strict=True)
                       if n.sum() >= 2 and w[n].sum() > 0])
    got = result.domination["real"]
    assert got["groups"] == len(shares) > 10
    np.testing.assert_allclose(
        [got["mean"], got["median"], got["p90"], got["above_half"]],
        [shares.mean(), np.median(shares), np.quantile(shares, 0.9),
         np.mean(shares > 0.5 * (1 + 1e-4))],
        rtol=1e-9)

  @pytest.mark.x64
  def test_tokens_at_a_clip_edge_are_left_out_and_counted(self):
    cases = _cases.make_cases(_cases.case_rng(5, 0), 8, jnp.float64)
    # Every third token's ratio exactly on GRPO's upper edge, 1 + epsilon_high;
    # the next token's a relative 1e-6 above it: outside float64's band of
    # 1e-12, so compared, not left out.
    on_edge = np.zeros(cases["mask"].shape, bool)
    on_edge[..., ::3] = True
    near = np.roll(on_edge, 1, axis=-1) & ~on_edge
    logp = jnp.where(on_edge, cases["old_logp"] + np.log(1.2), cases["logp"])
    logp = jnp.where(near, cases["old_logp"] + np.log(1.2 * (1 + 1e-6)), logp)
    assert cases["logp"].dtype == jnp.float64
    out = jax.device_get(_stats.compare_chunk("grpo", **dict(cases, logp=logp)))
    # The expected counts, from the rewards alone: a rollout's advantage has the
    # sign of its reward minus its group's mean over the rollouts present.
    mask, rewards = np.asarray(cases["mask"]), np.asarray(cases["rewards"])
    present = mask.any(-1)
    mean = (rewards * present).sum(-1, keepdims=True) / np.maximum(present.sum(-1, keepdims=True), 1)
    side = {"positive": (rewards > mean) & present, "negative": (rewards < mean) & present}
    for sign, members in side.items():
      expected = int((on_edge & mask & members[..., None]).sum())
      assert expected > 0
      assert int(out[sign]["edge_excluded"]) == expected, sign

  @pytest.mark.x64
  def test_small_sweep_passes_with_properties(self):
    result = ga.run_sweep(512, ("float64",), chunk=64,
                          objectives=("real", "grpo", "cispo", "grpo_dual_clip"),
                          progress=lambda _: None)
    real = result.table["real"]
    assert real["positive"]["float64"]["passed"] and real["negative"]["float64"]["passed"]
    assert real["positive"]["float64"]["cases"] > 1000
    assert result.properties["real"]["negative"]["float64"]["bounded"]
    assert result.properties["real"]["positive"]["float64"]["monotonic"]
    # GRPO: bounded for positives, unbounded (domination) for negatives.
    assert result.properties["grpo"]["positive"]["float64"]["bounded"]
    assert not result.properties["grpo"]["negative"]["float64"]["bounded"]
    assert result.properties["grpo"]["negative"]["float64"]["max_weight"] > 1e8
    # The dual clip bounds GRPO's negatives by c; CISPO never zeroes a token.
    dual = result.properties["grpo_dual_clip"]["negative"]["float64"]
    assert dual["bounded"] and 2.5 < dual["max_unit_weight"] <= 3.0
    assert result.table["cispo"]["negative"]["float64"]["zero_fraction"] == 0.0
    assert result.table["grpo"]["negative"]["float64"]["zero_fraction"] > 0.05
    s, auto, closed = result.figure_curves["real"]["positive"]
    assert auto.shape == s.shape == closed.shape
    on_policy = np.argmin(np.abs(s))
    np.testing.assert_allclose(auto[on_policy], 1 / (0.5 * (1 + 4)), rtol=1e-2)  # C+ = 4 near s=0


class TestPassAtKNegatives:
  """Pass@k gives its wrong rollouts A = 0: they are negatives whose weight must be 0."""

  @pytest.mark.x64
  def test_they_are_counted_and_checked_as_exact_zeros(self):
    result = ga.run_sweep(256, ("float64",), chunk=64, objectives=("grpo_passk",),
                          progress=lambda _: None)
    row = result.table["grpo_passk"]["negative"]["float64"]
    assert row["cases"] > 1000 and row["passed"]
    assert row["zero_fraction"] == 1.0 and row["max_abs_err"] == 0.0
    assert "n/a" not in ga.format_table(result.table, ("float64",))

  @pytest.mark.x64
  def test_a_weight_on_them_fails(self, monkeypatch):
    right = cf.advantage_weights

    def credit_for_the_wrong(*args, **kwargs):
      w = right(*args, **kwargs)
      nudge = jnp.where(w.advantages[..., None] == 0, 1e-3 * w.agg_factor, 0.0)
      return w._replace(token_weights=w.token_weights + nudge)
    jax.clear_caches()
    monkeypatch.setattr(cf, "advantage_weights", credit_for_the_wrong)
    try:
      result = ga.run_sweep(64, ("float64",), chunk=16, objectives=("grpo_passk",),
                            progress=lambda _: None)
    finally:
      jax.clear_caches()
    assert not result.table["grpo_passk"]["negative"]["float64"]["passed"]


def test_a_row_without_cases_says_so():
  row = dict(cases=0, max_abs_err=0.0, max_rel_err=0.0, tolerance=1e-9, bounded=True,
             monotonic=True, zero_fraction=0.0, passed=True)
  table = {"x": {"negative": {"float64": row},
                 "positive": {"float64": dict(row, cases=5)}}}
  lines = ga.format_table(table, ("float64",)).splitlines()
  assert lines[2].endswith("n/a (no cases)") and lines[3].endswith("ok")
  assert "FAIL" in ga.format_table({"x": {"positive": {"float64": dict(row, cases=5, passed=False)}}},
                                   ("float64",))


def _vespo_peak_by_grid(k, lam):
  w = np.linspace(1e-6, 20.0, 2_000_001)
  return np.max(np.exp(lam + k * np.log(w) - lam * w))


def _sapo_peak_by_grid(tau_g):
  rho = np.linspace(1e-6, 1 + 60 / tau_g, 2_000_001)
  return np.max(4 * rho / (2 + np.exp(tau_g * (rho - 1)) + np.exp(-tau_g * (rho - 1))))


def _stated_bounds():
  """`|dL/ds| / (|A| agg)`'s bound for each configuration and sign, by hand from
  each objective's formula and its default hyperparameters (None: unbounded)."""
  d = losses.defaults
  eh = lambda n: 1 + d(n)["epsilon_high"]  # noqa: E731
  v, s = d("vespo"), d("sapo")
  return {
      "grpo": (eh("grpo"), None), "dapo": (eh("dapo"), None), "dr_grpo": (eh("dr_grpo"), None),
      "gspo": (eh("gspo"), None), "luspo": (eh("luspo"), None), "clip_cov": (eh("clip_cov"), None),
      "cispo": (eh("cispo"), eh("cispo")),  # w = min(rho, 1 + eps_high) for either sign
      "sapo": (_sapo_peak_by_grid(s["tau_pos"]), _sapo_peak_by_grid(s["tau_neg"])),
      "gmpo": (np.exp(d("gmpo")["epsilon_high"]), None),
      "gpg": (1.0, 1.0),  # -A log pi: the weight is 1
      "topr": (1.0, 1.0),  # 1 for positives, min(rho(o), 1) for negatives
      "dppo_tv": (d("dppo_tv")["tis_cap"],) * 2, "dppo_kl": (d("dppo_kl")["tis_cap"],) * 2,
      "kl_cov": (None, None), "dro": (None, None),
      "vespo": (_vespo_peak_by_grid(v["k_pos"], v["lambda_pos"]),
                _vespo_peak_by_grid(v["k_neg"], v["lambda_neg"])),
      "grpo_dual_clip": (eh("grpo"), 3.0), "grpo_delta": (eh("grpo"), 4.0),
      "grpo_rloo": (eh("grpo"), None), "grpo_bnpo": (eh("grpo"), None),
      "grpo_positive_nll": (None, None),  # the NLL's mu / N+ does not scale with |A|
      "grpo_reinforce_pp": (eh("grpo"), None), "grpo_opo": (eh("grpo"), None),
      "grpo_passk": (eh("grpo"), 0.0),  # wrong rollouts get A = 0
  }


def test_every_stated_bound_against_a_hand_table():
  table = _stated_bounds()
  assert set(table) == set(cf.CONFIGURATIONS)
  for name, want in table.items():
    for sign, w in zip(("positive", "negative"), want, strict=True):
      got, text = cf.unit_bound(name, sign)
      assert (got is None) == (w is None), (name, sign, got, text)
      if w is not None:
        np.testing.assert_allclose(got, w, rtol=1e-6, err_msg=f"{name} {sign}: {text}")
      assert ("unbounded" in text) == (w is None), (name, sign, text)


def _run_cli(*args, timeout=600):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  return subprocess.run([sys.executable, "-m", "real_jax.grad_analysis", *args],
                        capture_output=True, text=True, timeout=timeout, env=env)


class TestCommand:

  def test_missing_platform_fails_clearly(self, tmp_path):
    try:  # decided before the run: an exit of 0 without a TPU is the bug looked for
      jax.devices("tpu")
      pytest.skip("a TPU is attached")
    except RuntimeError:
      pass
    proc = _run_cli("--out", str(tmp_path), "--platform", "tpu", "--cases", "8",
                    "--compilation_cache", "")
    assert proc.returncode != 0
    assert "JAX sees no TPU here" in proc.stdout + proc.stderr

  def test_bad_objective_is_a_usage_error(self, tmp_path):
    proc = _run_cli("--out", str(tmp_path), "--objectives", "real,ppo", "--compilation_cache", "")
    assert proc.returncode != 0
    assert "unknown ['ppo']" in proc.stdout + proc.stderr

  @pytest.mark.slow
  def test_end_to_end(self, tmp_path):
    # Every objective, both dtypes, at the accelerator report's tiny sizes.
    proc = _run_cli("--out", str(tmp_path), "--cases", "256", "--chunk", "64",
                    "--compilation_cache", "")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "float64" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["platform"] == "cpu"
    assert set(report["table"]) == set(ga.OBJECTIVES)
    for name in ga.OBJECTIVES:
      for sign in ("positive", "negative"):
        for dtype in ("float32", "float64"):
          row = report["table"][name][sign][dtype]
          assert set(row) >= {"cases", "max_abs_err", "max_rel_err", "bounded", "monotonic"}
          assert row["max_rel_err"] <= TOLERANCE[dtype]
          assert row["monotonic"]
    assert (tmp_path / "figure1.png").stat().st_size > 10_000
    assert (tmp_path / "figure_variants.png").stat().st_size > 10_000
    assert (tmp_path / "figure_atlas.png").stat().st_size > 10_000
    assert "Zero where:" in proc.stdout and "gate peak" in proc.stdout
    # GRAD's seed form equals REAL's C+ form, and BCE is REAL's form with
    # C = 1: float64 round-off apart (5e-14 over 100,000 groups).
    assert set(report["identities"]) == {"grad_seed_form_equals_real_c_plus_form",
                                         "bce_equals_real_with_c_equal_1"}
    assert all(0 <= v <= 1e-12 for v in report["identities"].values()), report["identities"]


# ----------------------------------------------------- your own objective ----


def _advantages(mask, rewards):
  return jax.vmap(losses.group_advantages)(rewards, jnp.any(mask, -1))[..., None]


def _cispo_weights(logp, old_logp, mask, rewards):
  """The correct closed form of a capped CISPO, token-mean: -min(rho, 5) A / N."""
  a = _advantages(mask, rewards)
  w = jnp.minimum(jnp.exp(jnp.where(mask, logp - old_logp, 0.0)), 5.0)
  return jnp.where(mask, -w * a, 0.0) / jnp.maximum(jnp.sum(mask), 1)


def _cispo_without_stop_gradient(logp, old_logp, mask, rewards):
  """The mistake: the importance weight is left in the graph."""
  a = _advantages(mask, rewards)
  w = jnp.minimum(jnp.exp(jnp.where(mask, logp - old_logp, 0.0)), 5.0)
  tok = jnp.where(mask, -w * a * jnp.where(mask, logp, 0.0), 0.0)
  return jnp.sum(tok) / jnp.maximum(jnp.sum(mask), 1)


def _grpo_inverted_for_negatives(logp, old_logp, mask, rewards):
  """The mistake: for A < 0 the pessimistic max is taken as a min."""
  a = _advantages(mask, rewards)
  rho = jnp.exp(jnp.where(mask, logp - old_logp, 0.0))
  unclipped, clipped = -a * rho, -a * jnp.clip(rho, 0.8, 1.2)
  tok = jnp.where(a < 0, jnp.minimum(unclipped, clipped), jnp.maximum(unclipped, clipped))
  tok = jnp.where(mask, tok, 0.0)
  length = jnp.maximum(jnp.sum(mask, -1), 1)
  return jnp.sum(jnp.sum(tok, -1) / length) / jnp.maximum(jnp.sum(jnp.any(mask, -1)), 1)


def _grpo_weights(logp, old_logp, mask, rewards):
  return cf.advantage_weights("grpo", logp, old_logp, mask, rewards).token_weights


class TestCheckYourOwnObjective:

  def check(self, loss, weights, edges=()):
    return ga.check_objective(ga.Objective("mine", loss, weights, edges), cases=512,
                              dtypes=("float64",), chunk=64, progress=None)

  @pytest.mark.x64
  def test_a_correct_objective_passes(self):
    def cispo(logp, old_logp, mask, rewards):  # with the stop-gradient
      return losses.cispo(logp, old_logp, mask, rewards)
    report = self.check(cispo, _cispo_weights)
    assert report.passed
    assert report.table["negative"]["float64"]["cases"] > 1000
    s, auto, closed = report.curves["positive"]
    np.testing.assert_allclose(auto, closed, rtol=1e-9)
    assert "mine" in ga.format_report(report)

  @pytest.mark.x64
  def test_catches_a_missing_stop_gradient(self):
    report = self.check(_cispo_without_stop_gradient, _cispo_weights)
    assert not report.passed
    for sign in ("positive", "negative"):
      assert report.table[sign]["float64"]["max_rel_err"] > 0.1

  @pytest.mark.x64
  def test_catches_a_trust_region_inverted_for_negatives(self):
    report = self.check(_grpo_inverted_for_negatives, _grpo_weights, edges=(0.8, 1.2))
    assert not report.passed
    assert report.table["positive"]["float64"]["passed"]
    assert report.table["negative"]["float64"]["max_rel_err"] >= 0.99  # 0 where it should not be

  def test_bad_arguments(self):
    with pytest.raises(TypeError, match="`objective` must be a grad_analysis.Objective"):
      ga.check_objective(_grpo_weights)
    with pytest.raises(ValueError, match="`cases` must be an integer >= 1"):
      ga.check_objective(ga.Objective("x", _grpo_inverted_for_negatives, _grpo_weights), cases=0)

  @pytest.mark.x64
  def test_plot(self, tmp_path):
    report = self.check(_grpo_inverted_for_negatives, _grpo_weights, edges=(0.8, 1.2))
    ga.plot_objective(str(tmp_path / "mine.png"), report)
    assert (tmp_path / "mine.png").stat().st_size > 10_000


def test_every_advantage_loss_has_one_record_and_no_other_name_falls_through():
  # Each shipped advantage-weighted loss states its closed form, bound, shape,
  # zeros and legend in one record; any other name raises instead of
  # borrowing another objective's (GPG's, before the records).
  assert set(cf.CLOSED_FORMS) == set(losses.ADVANTAGE_LOSSES)
  assert set(cf.LABEL_FORMS) == set(losses.LABEL_LOSSES)
  with pytest.raises(ValueError, match="`name` must be one of"):
    cf.label_weights("reel", *map(jnp.asarray, batches.random_batch(0)))
  with pytest.raises(ValueError, match="no closed form for 'gpg2'"):
    cf.closed_form("gpg2")
  for name in cf.CONFIGURATIONS:
    loss = cf.configuration(name)[0]
    assert cf.clip_edges(name) == cf.CLOSED_FORMS[loss].edges(cf.configuration(name)[1])
    assert _properties.direction(name, "positive") in _properties.DIRECTION_WORDS
