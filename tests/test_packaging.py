"""What ships around the package: the commands' flags, the launch script."""

import os
import subprocess
import sys

import pytest

# The import rules (the library loads no optional engine and no command; no
# command imports another; every layer imports only below it) are
# tests/test_layers.py.


@pytest.mark.slow
def test_entry_points_share_one_flag_style():
  for entry in ("real_jax.train", "real_jax.train_scan", "real_jax.sweep", "real_jax.study"):
    out = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True,
                         text=True, timeout=300, cwd="/")
    assert "Traceback" not in out.stderr, (entry, out.stderr[-1000:])
    assert "--config" in out.stdout and "--workdir" in out.stdout, entry


def test_tpu_launch_script_dry_run():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  script = os.path.join(root, "experiments", "launch_tpu_r1_1p5b.sh")
  env = dict(os.environ, DRY_RUN="1", ZONE="zone-a", LOSS="bce")
  out = subprocess.run(["bash", script], capture_output=True, text=True,
                       env=env, cwd=root, timeout=60)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert lines[0].startswith("gcloud compute tpus tpu-vm create real-1p5b --zone=zone-a")
  assert lines[1].startswith("git archive")
  assert "tpu-vm scp" in lines[2] and "tpu-vm ssh" in lines[3]
  assert "--config.loss=bce" in lines[3]
  assert "r1_distill_1p5b_tunix.py" in lines[3]
  env.pop("ZONE")
  out = subprocess.run(["bash", script], capture_output=True, text=True,
                       env=env, cwd=root, timeout=60)
  assert out.returncode != 0 and "ZONE" in out.stderr
