"""The sweep runner: bookkeeping, the one summary schema, a real sweep end to end."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from real_jax import metric_names
from real_jax.reporting import sweep as report
from real_jax.training import metrics
from real_jax.training import scan
from real_jax.training import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_run(value: float, steps: int, n_evals: int) -> dict:
  run = {k: np.full(steps, value, np.float32) for k in metric_names.STEP_METRICS}
  run["score_pos_mean"][0] = np.nan  # undefined at a step: must come out as null
  run[metric_names.EVAL_METRIC] = np.linspace(0.1, value, n_evals).astype(np.float32)
  return run


class TestRunner:
  """The runner's bookkeeping, with a stand-in for training."""

  points = sweep.product(loss=["real", "boom"], tau=[0.25, 1.0], seed=[0, 1])

  @staticmethod
  def fake_group(calls):
    def run(cfg, todo):
      calls.append((cfg.loss, [(p["tau"], p["seed"]) for p in todo]))
      if cfg.loss == "boom":
        raise RuntimeError("this point's training raised")
      n_evals = len(metrics.eval_steps(cfg.steps, cfg.eval_every))
      return [fake_run(p["tau"] + p["seed"], cfg.steps, n_evals) for p in todo]
    return run

  def test_skips_finished_resumes_interrupted_survives_failure(self, tmp_path, tiny_config):
    cfg = tiny_config(steps=12, eval_every=5)
    calls = []
    status = sweep.run_grid(cfg, self.points, str(tmp_path), log=lambda _: None,
                             run_group=self.fake_group(calls))
    assert len(status["done"]) == 4 and len(status["failed"]) == 4
    assert [c[0] for c in calls] == ["real", "boom"]
    assert len(calls[0][1]) == 4  # seeds x taus of one loss: one program of the config's width
    failed = tmp_path / sweep.point_name({"loss": "boom", "tau": 0.25, "seed": 0}) / "FAILED"
    assert "this point's training raised" in failed.read_text()

    # Interrupted: a point lost its DONE marker. Only it is trained again (a
    # point's numbers do not depend on its neighbours in a program of fixed
    # width), with the failures.
    lost = {"loss": "real", "tau": 1.0, "seed": 1}
    os.remove(sweep.done_marker(str(tmp_path), lost))
    kept = pathlib.Path(sweep.done_marker(str(tmp_path), {"loss": "real", "tau": 0.25, "seed": 0}))
    kept.write_text(kept.read_text() + " ")  # a rewrite would drop this
    calls.clear()
    status = sweep.run_grid(cfg, self.points, str(tmp_path), log=lambda _: None,
                             run_group=self.fake_group(calls))
    assert calls[0] == ("real", [(1.0, 1)])
    assert len(status["skipped"]) == 3 and len(status["done"]) == 1
    assert kept.read_text().endswith(" ")

    # Each point's metrics.jsonl is the one schema: step 0..12, evaluations at 0, 5, 10, 12.
    recs = metrics.read_metrics(str(tmp_path / sweep.point_name(lost)))
    assert [r["step"] for r in recs] == list(range(13))
    assert all(list(r) == list(metric_names.METRICS) for r in recs)
    assert [r["step"] for r in recs if r["eval_pass_at_1"] is not None] == [0, 5, 10, 12]
    assert recs[1]["score_pos_mean"] is None and recs[2]["score_pos_mean"] == 2.0
    done = json.loads(pathlib.Path(sweep.done_marker(str(tmp_path), lost)).read_text())
    assert done["base_pass_at_1"] == pytest.approx(0.1)  # the first evaluation, not the last
    assert done["final_pass_at_1"] == pytest.approx(2.0)

    summary, plots = report.summarise(self.points, str(tmp_path))
    rows = list(csv.DictReader(open(summary)))
    points = [r for r in rows if r["row"] == "point"]
    assert len(points) == 4 and {r["loss"] for r in points} == {"real"}
    means = {r["tau"]: r for r in rows if r["row"] == "mean"}
    stds = {r["tau"]: r for r in rows if r["row"] == "std"}
    assert set(means) == {"0.25", "1.0"} and means["1.0"]["n_seeds"] == "2"
    # tau 1.0: seeds 0 and 1 end at 1.0 and 2.0.
    assert float(means["1.0"]["final_pass_at_1"]) == pytest.approx(1.5)
    assert float(stds["1.0"]["final_pass_at_1"]) == pytest.approx(np.std([1.0, 2.0], ddof=1))
    assert {os.path.basename(p) for p in plots} == {"curves.png", "sweep.png"}
    assert all(os.path.getsize(p) > 10_000 for p in plots)
    table = report.format_summary(summary)
    assert "1.500 +- 0.707" in table

  def test_a_group_wider_than_a_program_is_trained_in_programs(self, tmp_path, tiny_config):
    cfg = tiny_config(steps=3, eval_every=3, points_per_program=3)
    calls = []
    points = sweep.product(loss=["real"], tau=[0.25, 1.0], seed=[0, 1, 2, 3])
    status = sweep.run_grid(cfg, points, str(tmp_path), log=lambda _: None,
                             run_group=self.fake_group(calls))
    assert [len(todo) for _, todo in calls] == [3, 3, 2]
    assert sorted(p for _, todo in calls for p in todo) == sorted(
        (p["tau"], p["seed"]) for p in points)
    assert len(status["done"]) == 8

  def test_unknown_override_is_an_error(self, tiny_config):
    with pytest.raises(ValueError, match="no such field"):
      sweep.apply_overrides(tiny_config(), {"learning_rate": 1.0})


class TestEndToEnd:

  @pytest.mark.slow
  def test_real_sweep_over_tau_and_lr(self, tmp_path, tiny_config):
    # 64 rollouts a step: the tiny base model solves a few per cent, and tau
    # can only matter once a group holds both a right and a wrong rollout (16
    # rollouts a step drew none in three steps, and every REAL run was the same).
    cfg = tiny_config(steps=3, prompts_per_step=8, group_size=8)
    points = sweep.product(loss=["real", "grpo"], tau=[0.25, 1.0], lr=[3e-4], seed=[0])
    points.append({"loss": "real", "tau": 0.25, "lr": 3e-3, "seed": 0})
    status = sweep.run_grid(cfg, points, str(tmp_path), log=lambda _: None)
    assert len(status["done"]) == 5 and not status["failed"]
    by_point = {(p["loss"], p["tau"], p["lr"]): metrics.read_metrics(
        str(tmp_path / sweep.point_name(p))) for p in points}
    assert any(r["mixed_group_fraction"] for r in by_point[("real", 0.25, 3e-4)][1:])
    # GRPO ignores tau: its two tau points are the same run.
    assert by_point[("grpo", 0.25, 3e-4)] == by_point[("grpo", 1.0, 3e-4)]
    assert by_point[("real", 0.25, 3e-4)] != by_point[("real", 1.0, 3e-4)]
    assert by_point[("real", 0.25, 3e-4)] != by_point[("real", 0.25, 3e-3)]

  def test_a_point_is_the_same_to_the_bit_whatever_shares_its_program(self, tiny_config):
    # The previous test's config and program: seed 0 at tau 0.25, lr 3e-4,
    # alone (padded to the program width of 4), then among 4 other points
    # in another order: in slot 2 of the first program and in slot 0 of the
    # second, padded.
    cfg = tiny_config(steps=3, prompts_per_step=8, group_size=8)
    alone, _ = scan.run_points(cfg, [0], taus=[0.25], lrs=[3e-4], log=lambda _: None)
    mixed, _ = scan.run_points(cfg, [2, 1, 0, 3, 0], taus=[1.0, 0.25, 0.25, 0.5, 0.25],
                               lrs=[3e-3, 1e-4, 3e-4, 3e-4, 3e-4], log=lambda _: None)
    assert set(alone) == set(metric_names.STEP_METRICS) | set(metric_names.EVAL_METRICS)
    for k in alone:
      assert alone[k].shape[0] == 1 and mixed[k].shape[0] == 5
      np.testing.assert_array_equal(mixed[k][2], alone[k][0], err_msg=k)
      np.testing.assert_array_equal(mixed[k][4], alone[k][0], err_msg=k)
    # The neighbours differ. Not by the loss: on-policy REAL's loss is a
    # function of each group's counts of right and wrong rollouts, and seeds 0
    # and 2 draw the same counts. The entropy and the gradient norm are
    # continuous in the parameters.
    for k in ("entropy", "grad_norm"):
      assert not np.array_equal(mixed[k][0], alone[k][0]), k

  @pytest.mark.slow
  def test_command_from_outside_the_repository(self, tmp_path, base_dir):
    # The command needs no working directory: configs load by path, the package is installed.
    workdir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "real_jax.sweep",
           f"--config={os.path.join(ROOT, 'experiments', 'configs', 'sweep_tau.py')}",
           f"--workdir={workdir}", "--config.steps=2", "--config.eval_every=2",
           "--config.task.kwargs.digits=1", "--config.model.width=16", "--config.model.depth=1",
           "--config.model.heads=2", "--config.prompts_per_step=4", "--config.group_size=4",
           "--config.eval_size=16", f"--config.base.dir={base_dir}", "--config.base.max_steps=30",
           "--config.base.eval_every=15", "--config.base.eval_size=32",
           "--config.base.batch_size=32", "--config.base.band=(0.0, 1.0)"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| loss | tau | seeds |" in proc.stdout
    rows = list(csv.DictReader(open(workdir / "summary.csv")))
    assert sum(r["row"] == "point" for r in rows) == 8
