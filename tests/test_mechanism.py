"""The mechanism study's variants and design (experiments/configs/mechanism.py), and its smoke run."""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import grad_analysis as ga
from real_jax import losses
from real_jax.losses import _registry
from real_jax.reporting import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "experiments", "configs", "mechanism.py")


@pytest.fixture
def mechanism(monkeypatch):
  """The config module loaded (registering its variants), and the registry restored after."""
  monkeypatch.setattr(_registry, "_SPECS", dict(_registry._SPECS))
  for name in ("frozen_real", "zero_sum_real"):
    monkeypatch.setitem(losses.LOSSES, name, None)
  return runpy.run_path(CONFIG)


def _batch(seed, scale):
  rng = np.random.default_rng(seed)
  B, G, T = 3, 6, 5
  old = -rng.uniform(0.2, 2.0, (B, G, T))
  logp = old + rng.normal(0.0, scale, (B, G, T))
  mask = np.arange(T) < rng.integers(1, T + 1, (B, G, 1))
  rewards = np.array([[1, 0, 0, 1, 0, 0], [1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]], np.float64)
  return tuple(map(jnp.asarray, (logp, old, mask, rewards)))


@pytest.mark.x64
@pytest.mark.parametrize("name", ["frozen_real", "zero_sum_real"])
def test_closed_form_checked_by_the_same_sweep(mechanism, name):
  report = ga.check_objective(name, cases=1024, dtypes=("float32", "float64"), progress=None,
                              tau=0.3)
  assert report.passed, report.table
  assert report.table["negative"]["float64"]["max_rel_err"] < 1e-12


@pytest.mark.x64
def test_frozen_real_is_real_on_policy_and_not_off(mechanism):
  def grads(name, batch):
    logp, old, mask, rewards = batch
    return jax.grad(lambda x: losses.get(name)(x, old, mask, rewards, tau=0.3)[0])(logp)

  on = _batch(0, 0.0)
  np.testing.assert_allclose(grads("frozen_real", on), grads("real", on), rtol=1e-12, atol=1e-15)
  off = _batch(0, 0.5)
  assert np.max(np.abs(grads("frozen_real", off) - grads("real", off))) > 1e-3
  # Its weights on a group: -1/(tau (1 + n+)) and +1/(tau (1 + n-)), whatever the scores.
  g = np.asarray(grads("frozen_real", off))
  per_rollout = g.sum(-1) * 3  # dL/dsbar_k, the batch's 3 non-empty groups undone
  np.testing.assert_allclose(per_rollout[0], np.array([-1, 1, 1, -1, 1, 1]) / 0.3
                             / np.array([3, 5, 5, 3, 5, 5]), rtol=1e-12)
  np.testing.assert_allclose(per_rollout[2], 0.0)  # one-sided: no loss


@pytest.mark.x64
def test_zero_sum_real_nets_zero_per_group_and_keeps_reals_differences(mechanism):
  logp, old, mask, rewards = batch = _batch(1, 0.5)

  def per_rollout(name):
    g = jax.grad(lambda x: losses.get(name)(x, old, mask, rewards, tau=0.3)[0])(logp)
    return np.asarray(jnp.sum(g, -1))  # dL/dsbar_k: each token carries 1/|o_k| of it

  zero_sum, real = per_rollout("zero_sum_real"), per_rollout("real")
  np.testing.assert_allclose(zero_sum.sum(-1), 0.0, atol=1e-14)
  assert abs(real[0].sum()) > 1e-3  # REAL's own weights do not net zero
  np.testing.assert_allclose(zero_sum - zero_sum.mean(-1, keepdims=True),
                             real - real.mean(-1, keepdims=True), atol=1e-14)
  del batch


def test_design_and_declared_comparisons(mechanism):
  points = mechanism["get_sweep"]()
  arms: dict = {}
  cfg = mechanism["get_config"]()
  for p in points:
    arms.setdefault((study.arm(p, cfg), study.regime(p, cfg)), set()).add((p["lr"], p["seed"]))
  primary = {"real", "frozen_real", "grpo"}
  assert {a for a, _ in arms} == primary | {"real tau=0.05", "real tau=0.2", "real tau=2",
                                           "gpg advantage=grpo"}
  for (name, regime), runs in arms.items():
    assert regime in ("1", "16")
    assert len(runs) == 3 * (20 if name in primary else 5), name
  declared = study.load_comparisons(CONFIG)
  assert declared["reference"] == "real"
  assert {(a, r) for a, r, _ in declared["primary"]} <= set(arms)
  assert len(declared["primary"]) == 3
  assert {m for _, _, m in declared["primary"]} == {"test_pass_at_1"}
  assert cfg.grad_clip >= 1e9  # tau only scales the gradient, which Adam removes
  # REAL's arms log the cosine with frozen REAL.
  assert all(p.get("compare_loss") == "frozen_real" for p in points if p["loss"] == "real")


def test_e3_design(mechanism):
  points = mechanism["get_sweep"]("e3")
  cfg = mechanism["get_config"]("e3")
  cells: dict = {}
  for p in points:
    cells.setdefault((study.arm(p, cfg), study.regime(p, cfg)), set()).add(p["seed"])
  losses_ = {"grpo", "dapo", "real", "zero_sum_real", "grad"}
  regimes = {f"{u} base{lo:g}" for u in (1, 4) for lo in (0.1, 0.8)}
  assert set(cells) == {(a, r) for a in losses_ for r in regimes}
  seeds = set(range(200, 220))
  assert all(s == seeds for s in cells.values())  # 20 paired seeds everywhere, fresh
  assert seeds.isdisjoint(set(range(120)))  # E1's and E2's
  assert (cfg.steps, cfg.lr, cfg.sampled_k) == (300, 1e-4, 8) and cfg.test_size > 0
  declared = mechanism["get_comparisons"]("e3")
  assert {(a, r) for a, r, _ in declared["primary"]} == {
      (a, f"1 base{lo:g}") for a in ("grpo", "zero_sum_real") for lo in (0.1, 0.8)}
  assert {m for _, _, m in declared["primary"]} == {"probe_entropy"}
  assert set(declared["metrics"]) <= set(study.COLUMNS)


def _study(tmp_path, base_dir, arg: str) -> list[dict]:
  """The study command on `mechanism.py:arg`; its per-seed rows."""
  cmd = [sys.executable, "-m", "real_jax.study", f"--config={CONFIG}:{arg}",
         f"--workdir={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
         f"--config.base.dir={base_dir}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return list(csv.DictReader(open(tmp_path / "out" / "per_seed.csv")))


@pytest.mark.slow
def test_smoke_run(tmp_path, base_dir):
  rows = _study(tmp_path, base_dir, "smoke")
  assert {r["arm"] for r in rows} == {"real", "frozen_real", "grpo", "real tau=2"}
  # On-policy, REAL's update is frozen REAL's: the cosine is 1 at every step
  # with a mixed group (the smoke's tiny policy has few), undefined at the others.
  cosines = []
  for folder in (tmp_path / "runs").iterdir():
    if "loss=real" in folder.name and "ppo_epochs=1" in folder.name:
      recs = [json.loads(line) for line in open(folder / "metrics.jsonl")]
      cosines += [r["grad_cosine"] for r in recs if r["grad_cosine"] is not None]
  assert cosines and np.allclose(cosines, 1.0, atol=1e-5), cosines
  assert all(r["grad_cosine_final"] == "" for r in rows if r["loss"] != "real")
  # Off-policy the scores move; on-policy they stay at 0 up to the recomputation's rounding.
  off = [float(r["score_abs_max_final"]) for r in rows if r["regime"] == "16"]
  on = [float(r["score_abs_max_final"]) for r in rows if r["regime"] == "1"]
  assert max(on) < 1e-5 < max(off), (on, off)  # (a seed with no reward never moves)
  summary = {(r["arm"], r["regime"]): r for r in csv.DictReader(open(tmp_path / "out"
                                                                     / "summary.csv"))}
  assert summary[("grpo", "16")]["comparison"] == "primary"
  assert summary[("real tau=2", "1")]["comparison"] == "exploratory"


@pytest.mark.slow
def test_e2_smoke_run(tmp_path, base_dir):
  rows = _study(tmp_path, base_dir, "e2_smoke")
  assert {r["regime"] for r in rows} == {"1", "1 lag2"}
  assert {r["arm"] for r in rows} == {"grpo", "grpo clip_ratio_c=3", "real"}
  # One update per step: on-policy without a lag (KL rounding only), off it with one
  # wherever the policy moved (a seed with no reward never moves).
  kl = {(r["regime"], r["arm"], r["seed"]): float(r["kl_old_final"]) for r in rows}
  assert max(v for (regime, _, _), v in kl.items() if regime == "1") < 1e-6
  assert max(v for (regime, _, _), v in kl.items() if regime == "1 lag2") > 1e-4
  lagged = [r for r in rows if r["regime"] == "1 lag2" and float(r["kl_old_final"]) > 1e-4]
  assert all(float(r["ratio_neg_max_q90"]) > 1 for r in lagged)
  assert not (tmp_path / "out" / "mismatch.png").exists()  # no dtype mismatch here


@pytest.mark.slow
def test_e3_smoke_run(tmp_path, base_dir):
  rows = _study(tmp_path, base_dir, "e3_smoke")
  assert {r["regime"] for r in rows} == {"1 base0", "1 base0.5"}
  assert {r["arm"] for r in rows} == {"grpo", "real", "zero_sum_real"}
  for r in rows:  # the sampled evaluation, on the fixed probe set
    assert 0 <= float(r["test_sampled_pass_at_1"]) <= float(r["test_sampled_pass_at_k"]) <= 1
    assert float(r["probe_entropy"]) > 0
  # On-policy net weights per group: zero for GRPO and zero-sum REAL; REAL's
  # baseline shift (1/tau) [(G-k)/(G+1-k) - k/(1+k)], G = 4: + at k = 1, - at k = 3.
  net = {(r["arm"], q): float(r[f"net_weight_pass_{q}_mean"]) for r in rows
         for q in (25, 50, 75, 100) if r[f"net_weight_pass_{q}_mean"] != ""}
  assert net, "no mixed group in the smoke runs"
  for (name, q), v in net.items():
    want = {"real": {25: 0.5, 50: 0.0, 75: -0.5}.get(q), "grpo": 0.0, "zero_sum_real": 0.0}[name]
    assert v == pytest.approx(want, abs=1e-4), (name, q, v)
  summary = {(r["arm"], r["regime"]): r for r in csv.DictReader(open(tmp_path / "out"
                                                                     / "summary.csv"))}
  for name in ("grpo", "zero_sum_real"):
    for regime in ("1 base0", "1 base0.5"):
      assert summary[(name, regime)]["reference_minus_this_probe_entropy_comparison"] == "primary"
      assert summary[(name, regime)]["comparison"] == "exploratory"  # test pass@1
  for figure in ("probe_entropy.png", "net_weight.png"):
    assert (tmp_path / "out" / figure).exists()
