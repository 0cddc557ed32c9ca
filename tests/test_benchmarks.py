"""The benchmark scripts: their NumPy losses are the same losses, and they run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import batches
import reference
from benchmarks import losses as bench_losses
from real_jax import losses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_vectorised_numpy_loss_equals_the_reference(name):
  # No padded rollouts or empty groups: the benchmark's batches have none.
  logp, old, mask, rewards = batches.random_batch(40, B=6, G=5, T=7, garbage=0.0,
                                                  kinds=("mixed", "all_correct", "all_wrong"))
  got = bench_losses.numpy_loss(name, logp, old, mask, rewards)
  np.testing.assert_allclose(got, reference.loss(name, logp, old, mask, rewards), rtol=1e-10)


def test_losses_benchmark_runs_and_writes_json(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "benchmarks/losses.py", "--shapes=2x4x16", "--repeats=1",
       "--losses=real,grpo", f"--json={out}"],
      capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  figures = json.loads(out.read_text())
  assert figures["bandwidth_GBps"] > 0
  assert [r["loss"] for r in figures["rows"]] == ["real", "grpo"]
  assert all(r["jax_s"] > 0 and r["numpy_s"] > 0 for r in figures["rows"])
