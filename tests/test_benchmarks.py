"""The benchmark scripts run from anywhere and write their figures as JSON (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from numerics import TOLERANCE  # the derivation check's, pinned
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_losses_benchmark_runs_and_writes_json(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "losses.py"), "--shapes=2x4x16",
       "--repeats=1", "--losses=real,grpo", f"--json={out}"],
      capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-2000:]
  figures = json.loads(out.read_text())
  assert figures["bandwidth_GBps"] > 0
  assert [r["loss"] for r in figures["rows"]] == ["real", "grpo"]
  assert all(r["jax_s"] > 0 and 0 < r["effective_GBps"] for r in figures["rows"])


@pytest.mark.slow
def test_accelerator_report_tiny(tmp_path):
  """`--tiny` on the CPU: every section is there and the gradient errors are within tolerance."""
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "accelerator.py"), "--tiny",
       f"--out={tmp_path}", "--platform=cpu"],
      capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((tmp_path / "report.json").read_text())
  import accelerator  # noqa: PLC0415  (benchmarks/ is on the test path, setup.cfg)
  for section in accelerator.SECTIONS:
    assert section in report, section
  assert report["device"]["platform"] == "cpu"
  grad = report["grad_check"]
  # --tiny checks two objectives; test_grad_analysis's end-to-end run checks them all.
  assert {r["objective"] for r in grad["rows"]} == {"real", "grpo"}
  assert {r["dtype"] for r in grad["rows"]} == {"float32", "float64"}
  for r in grad["rows"]:
    assert r["max_rel_err"] <= TOLERANCE[r["dtype"]], r
  assert grad["passed"]
  assert {(r["dtype"], r["mask"]) for r in report["losses"]["rows"]} == {
      (d, m) for d in ("float32", "bfloat16") for m in ("bool", "float")}
  assert [r["seeds"] for r in report["training"]["rows"]] == [1, 2]
  md = (tmp_path / "report.md").read_text()
  for heading in ("## Limits", "## Derivation check", "## Losses", "## Training",
                  "## Update step and sampling", "## Targets"):
    assert heading in md, heading
