"""The study: selection on validation only, t intervals, paired comparisons, arms, a smoke run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from real_jax.reporting import stats
from real_jax.reporting import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def row(loss, regime, lr, seed, val, test):
  return {"loss": loss, "updates_per_step": regime, "lr": lr, "seed": seed,
          "val_pass_at_1": val, "test_pass_at_1": test,
          **{c: 0.0 for c in study.COLUMNS if c not in ("val_pass_at_1", "test_pass_at_1")}}


class TestSelection:

  def test_learning_rate_is_chosen_on_validation_only(self):
    # lr 1e-3 is better on test, 1e-4 on validation: the study must pick 1e-4.
    rows = [row("grpo", 4, 1e-4, s, val=0.6, test=0.2) for s in range(3)]
    rows += [row("grpo", 4, 1e-3, s, val=0.5, test=0.9) for s in range(3)]
    assert study.select_learning_rates(rows) == {("grpo", "4"): 1e-4}
    summary = study.summary_rows(rows)
    assert summary[0]["selected_lr"] == 1e-4
    assert summary[0]["test_pass_at_1_mean"] == pytest.approx(0.2)

  def test_ties_go_to_the_smaller_rate(self):
    rows = [row("real", 1, lr, 0, val=0.5, test=0.5) for lr in (1e-3, 3e-4)]
    assert study.select_learning_rates(rows) == {("real", "1"): 3e-4}

  def test_paired_difference_is_seed_by_seed(self):
    rows = []
    for s, (r, g) in enumerate([(0.5, 0.4), (0.7, 0.6), (0.2, 0.1)]):
      rows += [row("real", 4, 1e-4, s, val=0.5, test=r), row("grpo", 4, 3e-4, s, val=0.5, test=g)]
    grpo = next(r for r in study.summary_rows(rows) if r["loss"] == "grpo")
    # Each seed's difference is exactly 0.1, so the t interval collapses onto it,
    # although the unpaired spreads overlap widely; 3 pairs, all positive: p = 2/8.
    assert grpo["reference"] == "real" and grpo["n_pairs"] == 3
    assert grpo["reference_minus_this_test_mean"] == pytest.approx(0.1)
    assert grpo["reference_minus_this_test_lo"] == pytest.approx(0.1)
    assert grpo["reference_minus_this_test_hi"] == pytest.approx(0.1)
    assert grpo["reference_minus_this_test_p"] == 0.25
    assert grpo["test_pass_at_1_lo"] < 0.3 < grpo["test_pass_at_1_hi"]


class TestComparisons:

  def _rows(self):
    rng = np.random.default_rng(0)
    rows = []
    for s in range(8):
      base = rng.uniform(0.3, 0.6)
      for loss, shift in (("real", 0.0), ("grpo", 0.05), ("dapo", -0.02), ("gpg", 0.0)):
        for regime in (1, 16):
          rows.append(row(loss, regime, 1e-4, s, val=0.5,
                          test=base + shift * regime / 16 + rng.normal(0, 0.01)))
    return rows

  def test_t_intervals_and_sign_flip_p_per_comparison(self):
    rows = self._rows()
    summary = study.summary_rows(rows)
    for r in summary:
      chosen = [x for x in rows if x["loss"] == r["loss"]
                and str(x["updates_per_step"]) == r["regime"]]
      mean, lo, hi = stats.t_interval([x["test_pass_at_1"] for x in chosen])
      assert (r["test_pass_at_1_mean"], r["test_pass_at_1_lo"], r["test_pass_at_1_hi"]) == (
          pytest.approx(mean), pytest.approx(lo), pytest.approx(hi))
      if r["loss"] == "real":
        assert "reference_minus_this_test_mean" not in r
        continue
      ref = {x["seed"]: x["test_pass_at_1"] for x in rows if x["loss"] == "real"
             and str(x["updates_per_step"]) == r["regime"]}
      d = [ref[x["seed"]] - x["test_pass_at_1"] for x in sorted(chosen, key=lambda x: x["seed"])]
      assert r["reference_minus_this_test_p"] == stats.sign_flip_p(d)
      assert r["reference_minus_this_test_lo"] == pytest.approx(stats.t_interval(d)[1])

  def test_holm_within_the_primary_family_and_within_the_rest(self):
    rows = self._rows()
    primary = (("grpo", "16"), ("dapo", "16"))
    summary = study.summary_rows(rows, primary=primary)
    compared = [r for r in summary if r["loss"] != "real"]
    families = {f: {(r["arm"], r["regime"]): r for r in compared if r["comparison"] == f}
                for f in ("primary", "exploratory")}
    assert set(families["primary"]) == set(primary) and len(families["exploratory"]) == 4
    for members in families.values():
      want = stats.holm({k: r["reference_minus_this_test_p"] for k, r in members.items()})
      assert {k: r["reference_minus_this_test_p_holm"] for k, r in members.items()} == want
    # 8 pairs and every difference of one sign: the smallest p, 2/256, times 2 primaries.
    assert families["primary"][("grpo", "16")]["reference_minus_this_test_p_holm"] == 4 / 256
    # Declared as exploratory instead, the same comparison pays for 6.
    alone = {(r["arm"], r["regime"]): r for r in study.summary_rows(rows)}
    assert alone[("grpo", "16")]["reference_minus_this_test_p_holm"] == 6 * 2 / 256
    assert alone[("grpo", "16")]["comparison"] == "exploratory"

  def test_another_reference_and_bad_declarations(self):
    rows = self._rows()
    summary = study.summary_rows(rows, reference="grpo")
    assert {r["reference"] for r in summary if "reference" in r} == {"grpo"}
    with pytest.raises(ValueError, match=r"name no \(arm, regime\)"):
      study.summary_rows(rows, primary=(("grpo", "4"),))

  def test_arms_split_a_loss_by_its_settings(self):
    rows = [dict(row("real", 1, 1e-4, s, val=0.5, test=0.4 + 0.01 * tau), arm=f"real tau={tau:g}")
            for s in range(3) for tau in (0.5, 2.0)]
    summary = study.summary_rows(rows, reference="real tau=0.5")
    assert [r["arm"] for r in summary] == ["real tau=0.5", "real tau=2"]
    assert summary[1]["reference_minus_this_test_mean"] == pytest.approx(-0.015)

  def test_comparisons_from_the_config(self, tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("def get_comparisons(arg=None):\n"
                    "  return {'reference': 'real', 'primary': [('grpo', 16)] if arg else []}\n")
    none = {"reference": "real", "metrics": ("test_pass_at_1",), "primary": ()}
    assert study.load_comparisons(str(path)) == none
    assert study.load_comparisons(f"{path}:x")["primary"] == (("grpo", "16", "test_pass_at_1"),)
    path.write_text("def get_comparisons():\n  return {'primry': []}\n")
    with pytest.raises(ValueError, match="'primry'"):
      study.load_comparisons(str(path))
    path.write_text("def get_comparisons():\n  return {'metrics': ['entropy']}\n")
    with pytest.raises(ValueError, match=r"metrics \['entropy'\] are no per-seed column"):
      study.load_comparisons(str(path))
    path.write_text("def get_comparisons():\n  return {'metrics': ['probe_entropy', "
                    "'test_pass_at_1'], 'primary': [('grpo', 1), ('dapo', 1, 'test_pass_at_1')]}\n")
    assert study.load_comparisons(str(path))["primary"] == (
        ("grpo", "1", "probe_entropy"), ("dapo", "1", "test_pass_at_1"))
    path.write_text("x = 1\n")
    assert study.load_comparisons(str(path)) == none

  def test_several_metrics_each_paired_and_holm_over_the_declared_family(self):
    rows = self._rows()
    rng = np.random.default_rng(1)
    for r in rows:
      r["probe_entropy"] = 0.5 + (0.1 if r["loss"] == "grpo" else 0) + rng.normal(0, 0.01)
    metrics = ("probe_entropy", "test_pass_at_1")
    primary = (("grpo", "1"), ("grpo", "16"), ("dapo", "16", "test_pass_at_1"))
    summary = {(r["arm"], r["regime"]): r for r in study.summary_rows(
        rows, primary=primary, metrics=metrics)}
    family = {}
    for (arm, regime), r in summary.items():
      if arm == "real":
        assert not any(k.startswith("reference_minus") for k in r)
        continue
      for metric in metrics:
        prefix = study.comparison_prefix(metric)
        ref = {x["seed"]: x[metric] for x in rows
               if x["loss"] == "real" and str(x["updates_per_step"]) == regime}
        d = [ref[x["seed"]] - x[metric] for x in sorted(rows, key=lambda x: x["seed"])
             if x["loss"] == arm and str(x["updates_per_step"]) == regime]
        assert r[f"{prefix}_mean"] == pytest.approx(np.mean(d))
        assert r[f"{prefix}_p"] == stats.sign_flip_p(d)
        declared = (arm, regime, metric) in {(a, g, m) for a, g, m in (
            (c[0], c[1], c[2] if len(c) > 2 else metrics[0]) for c in primary)}
        column = "comparison" if metric == "test_pass_at_1" else f"{prefix}_comparison"
        assert r[column] == ("primary" if declared else "exploratory")
        if declared:
          family[(arm, regime, metric)] = r[f"{prefix}_p"]
    assert summary[("grpo", "1")]["reference_minus_this_probe_entropy_mean"] < -0.09
    assert set(family) == {("grpo", "1", "probe_entropy"), ("grpo", "16", "probe_entropy"),
                           ("dapo", "16", "test_pass_at_1")}
    want = stats.holm(family)
    for (arm, regime, metric), p in want.items():
      assert summary[(arm, regime)][f"{study.comparison_prefix(metric)}_p_holm"] == p
    with pytest.raises(ValueError, match="no compared metric"):
      study.summary_rows(rows, primary=(("grpo", "1", "kl_old_final"),), metrics=metrics)


def test_tables_only_remakes_tables_and_per_seed_figures_from_the_csv(tmp_path):
  # A committed per_seed.csv and a config that declares a primary comparison on
  # another metric: the command remakes summary.csv as write_tables does and
  # draws the figures per-seed rows carry (ratios, net weights), no runs needed.
  rng = np.random.default_rng(0)
  rows = [dict(row(loss, 1, 1e-4, s, val=0.5, test=rng.uniform(0.3, 0.6)), arm=loss,
               regime="1", tau=0.5, probe_entropy=rng.uniform(0.5, 1.0),
               ratio_neg_p50_final=1.0 + rng.uniform(0, 0.1),
               net_weight_pass_25_mean=rng.normal())
          for loss in ("real", "grpo") for s in range(4)]
  study._write_csv(str(tmp_path / "per_seed.csv"), rows)
  config = tmp_path / "cfg.py"
  config.write_text("from real_jax.training import config\n"
                    "def get_config():\n  return config.get_config()\n"
                    "def get_comparisons():\n  return {'metrics': ['probe_entropy'], "
                    "'primary': [('grpo', '1')]}\n")
  proc = subprocess.run([sys.executable, "-m", "real_jax.study", f"--config={config}",
                         f"--out={tmp_path}", "--tables_only"], capture_output=True, text=True,
                        timeout=300, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  written = {r["arm"]: r for r in study.read_summary(str(tmp_path / "summary.csv"))}
  want = {r["arm"]: r for r in study.summary_rows(
      study.read_per_seed(str(tmp_path / "per_seed.csv")), primary=(("grpo", "1"),),
      metrics=("probe_entropy",))}
  for column in ("reference_minus_this_probe_entropy_mean", "reference_minus_this_probe_entropy_p",
                 "reference_minus_this_probe_entropy_p_holm"):
    assert written["grpo"][column] == pytest.approx(want["grpo"][column])
  assert written["grpo"]["reference_minus_this_probe_entropy_comparison"] == "primary"
  for figure in ("ratio_neg.png", "net_weight.png"):
    assert (tmp_path / figure).exists(), proc.stdout


class TestSmokeStudy:

  @pytest.mark.slow
  def test_command_end_to_end(self, tmp_path, base_dir):
    # The length study's sweep on a tiny grid: GRPO and REAL x the on-policy
    # regime and the bfloat16-sampler regime with token TIS x 2 lrs x 2 seeds.
    config = os.path.join(ROOT, "experiments", "configs", "study_length.py")
    cmd = [sys.executable, "-m", "real_jax.study", f"--config={config}:smoke",
           f"--workdir={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
           f"--config.base.dir={base_dir}"]
    proc = subprocess.run(cmd + ["--rerun_check=3"], capture_output=True, text=True,
                          timeout=900, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| regime | arm |" in proc.stdout
    # Three points of the first group trained again, reversed and padded: the same bits.
    check = json.loads((tmp_path / "out" / "rerun_check.json").read_text())
    assert check["identical"] == 3 and not check["differing"]
    assert [p["seed"] for p in check["points"]] == [1, 0, 1]
    assert "| length, correct |" in (tmp_path / "out" / "lengths.md").read_text()
    per_seed = list(csv.DictReader(open(tmp_path / "out" / "per_seed.csv")))
    assert len(per_seed) == 16
    assert {r["regime"] for r in per_seed} == {"1", "1 bf16 tis_token"}
    assert all(r["test_pass_at_1"] != "" and r["val_pass_at_1"] != "" for r in per_seed)
    # Lengths are counted in tokens, EOS included: 1-digit chains are at most
    # "9+9=18:18" and EOS, 10 tokens.
    for r in per_seed:
      assert 1 <= float(r["length_wrong_max_q90"]) <= 10, r
      assert 0 <= float(r["truncated_fraction_q90"]) <= 1, r
    plain = [r for r in per_seed if r["regime"] == "1"]
    mismatched = [r for r in per_seed if r["regime"] != "1"]
    assert all(float(r["mismatch_kl_q90"]) == 0 for r in plain)
    assert all(float(r["mismatch_kl_q90"]) > 0 for r in mismatched)
    summary = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert len(summary) == 4  # (loss, regime) pairs
    grpo = [r for r in summary if r["loss"] == "grpo"]
    assert all(r["reference_minus_this_test_mean"] != "" for r in grpo)
    grid = list(csv.DictReader(open(tmp_path / "out" / "grid.csv")))
    assert len(grid) == 8 and "test_pass_at_1" not in grid[0]  # selection data only
    for name in ("grid.png", "test_pass_vs_updates.png", "entropy.png", "mechanism.png",
                 "length.png", "mismatch.png"):
      assert os.path.getsize(tmp_path / "out" / name) > 10_000, name
    # Resumable: a second run trains nothing.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert proc.returncode == 0 and "0 run, 16 skipped" in proc.stdout, proc.stdout[-2000:]


def test_updates_per_step_is_epochs_times_minibatches():
  cfg = types.SimpleNamespace(ppo_epochs=3, minibatches=4)
  assert study.updates_per_step({}, cfg) == 12
  assert study.updates_per_step({"ppo_epochs": 2}, cfg) == 8
  assert study.updates_per_step({"minibatches": 5, "ppo_epochs": 1}, cfg) == 5
