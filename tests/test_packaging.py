"""What ships around the package: optional extras stay optional, entry points stay thin."""

import os
import subprocess
import sys

LIBRARY_MODULES = [
    "real_jax", "real_jax.losses", "real_jax.grad_analysis", "real_jax.model",
    "real_jax.sampling", "real_jax.tasks", "real_jax.tasks.math", "real_jax.training",
    "real_jax.integrations",
]
ENTRY_POINTS = ["real_jax.train", "real_jax.train_scan", "real_jax.sweep", "real_jax.study",
                "real_jax.grad_analysis.__main__"]


def _imported_after(modules: list[str]) -> set[str]:
  code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
          + "print(','.join(sorted(sys.modules)))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, timeout=300, cwd="/")
  return set(out.stdout.strip().split(","))


def test_core_imports_neither_tunix_nor_math_verify():
  loaded = _imported_after(LIBRARY_MODULES)
  bad = sorted(m for m in loaded
               if m.split(".")[0] in ("tunix", "math_verify", "transformers", "torch"))
  assert not bad, bad
  assert not loaded & set(ENTRY_POINTS)  # the library never imports a command


def test_no_entry_point_imports_another():
  for entry in ENTRY_POINTS:
    others = set(ENTRY_POINTS) - {entry}
    assert not _imported_after([entry]) & others, entry


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
