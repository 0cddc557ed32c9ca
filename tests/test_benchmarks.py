"""The benchmark scripts run from anywhere and write their figures as JSON (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
