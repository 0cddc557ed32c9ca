r"""Compare RLVR losses on a toy task: same base model, same budget, several seeds.

  python experiments/compare_losses.py --workdir=runs/compare \
      [--config=experiments/configs/addition.py] [--losses=grpo,dapo,gspo,real,bce,grad] \
      [--seeds=0,1,2] [--steps=80]

Each (loss, seed) trains into `WORKDIR/<loss>_s<seed>` (a finished run is
reused, an interrupted one resumes). Writes `WORKDIR/curves.csv` (every logged
step of every run), `WORKDIR/summary.csv` (per loss: mean and spread over
seeds) and `WORKDIR/comparison.png` (reward, held-out pass@1, entropy and
response length against step; mean over seeds, band = min..max).
"""

from __future__ import annotations

import csv
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from real_jax import losses  # noqa: E402
from real_jax import train as train_lib  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "addition.py"),
    "Base experiment config.", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", "runs/compare", "Output folder.")
_LOSSES = flags.DEFINE_list("losses", ["grpo", "dapo", "gspo", "real", "bce", "grad"], "Losses.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_STEPS = flags.DEFINE_integer("steps", None, "Override config.steps.")

CURVES = ("reward_mean", "eval_pass_at_1", "entropy", "response_length")
LABELS = {"reward_mean": "training reward (mean of the batch)",
          "eval_pass_at_1": "held-out pass@1 (greedy)",
          "entropy": "policy entropy (nats / token)",
          "response_length": "response length (tokens)"}


def run_all(cfg, workdir, loss_names, seeds, log=print) -> list[dict]:
  rows = []
  for name in loss_names:
    if name not in losses.LOSSES:
      raise ValueError(f"--losses: unknown {name!r}; known: {', '.join(sorted(losses.LOSSES))}.")
  for name in loss_names:
    for seed in seeds:
      run_cfg = cfg.copy_and_resolve_references()
      run_cfg.loss, run_cfg.seed = name, int(seed)
      run_dir = os.path.join(workdir, f"{name}_s{seed}")
      start = time.perf_counter()
      result = train_lib.train(run_cfg, run_dir, log=log)
      rows.append({"loss": name, "seed": int(seed), "dir": run_dir,
                   "seconds": time.perf_counter() - start, "base": result.base_info})
  return rows


def summarise(rows, workdir, tail: int = 10) -> list[dict]:
  """Writes curves.csv and summary.csv; returns the summary rows."""
  curves_path = os.path.join(workdir, "curves.csv")
  per_loss: dict = {}
  with open(curves_path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["loss", "seed", "step", *CURVES])
    for row in rows:
      metrics = train_lib.read_metrics(row["dir"])
      for m in metrics:
        writer.writerow([row["loss"], row["seed"], m["step"], *(m.get(k, "") for k in CURVES)])
      train_steps = [m for m in metrics if "reward_mean" in m]
      evals = [m for m in metrics if "eval_pass_at_1" in m]
      per_loss.setdefault(row["loss"], []).append({
          "base_pass_at_1": evals[0]["eval_pass_at_1"],
          "final_pass_at_1": evals[-1]["eval_pass_at_1"],
          "best_pass_at_1": max(e["eval_pass_at_1"] for e in evals),
          "final_reward": float(np.mean([m["reward_mean"] for m in train_steps[-tail:]])),
          "final_entropy": float(np.mean([m["entropy"] for m in train_steps[-tail:]])),
          "final_length": float(np.mean([m["response_length"] for m in train_steps[-tail:]])),
          "steps": train_steps[-1]["step"], "seconds": row["seconds"]})
  summary = []
  for name, runs in per_loss.items():
    out = {"loss": name, "seeds": len(runs), "steps": runs[0]["steps"]}
    for key in ("base_pass_at_1", "final_pass_at_1", "best_pass_at_1", "final_reward",
                "final_entropy", "final_length", "seconds"):
      v = np.array([r[key] for r in runs])
      out[f"{key}_mean"], out[f"{key}_std"] = float(v.mean()), float(v.std())
    summary.append(out)
  with open(os.path.join(workdir, "summary.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(summary[0]))
    writer.writeheader()
    writer.writerows(summary)
  return summary


def plot(rows, workdir, window: int = 5) -> str:
  fig, axes = plt.subplots(2, 2, figsize=(12, 8))
  colors = dict(zip(["grpo", "dapo", "gspo", "dr_grpo", "real", "bce", "grad", "real_product"],
                    plt.rcParams["axes.prop_cycle"].by_key()["color"]))
  by_loss: dict = {}
  for row in rows:
    by_loss.setdefault(row["loss"], []).append(train_lib.read_metrics(row["dir"]))
  for ax, key in zip(axes.flat, CURVES):
    for name, runs in by_loss.items():
      series = []
      for metrics in runs:
        pts = [(m["step"], m[key]) for m in metrics if key in m]
        steps, vals = map(np.asarray, zip(*pts))
        if key != "eval_pass_at_1" and len(vals) >= window:  # moving average of noisy batches
          vals = np.convolve(vals, np.ones(window) / window, mode="valid")
          steps = steps[window - 1:]
        series.append((steps, vals))
      n = min(len(v) for _, v in series)
      steps, stack = series[0][0][:n], np.stack([v[:n] for _, v in series])
      ax.plot(steps, stack.mean(0), label=f"{name} ({len(runs)} seeds)", color=colors.get(name))
      ax.fill_between(steps, stack.min(0), stack.max(0), alpha=0.15, color=colors.get(name))
    ax.set_xlabel("RL step")
    ax.set_ylabel(LABELS[key])
    ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=9)
  fig.suptitle("Toy RLVR from one supervised base model: mean over seeds (band: min..max)")
  fig.tight_layout()
  path = os.path.join(workdir, "comparison.png")
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def format_summary(summary) -> str:
  lines = ["| loss | seeds | steps | base pass@1 | final pass@1 | best pass@1 | final reward "
           "| final entropy | wall s / run |", "|" + " --- |" * 9]
  for s in summary:
    pm = lambda k, d=3: f"{s[k + '_mean']:.{d}f} +- {s[k + '_std']:.{d}f}"  # noqa: E731
    lines.append(f"| {s['loss']} | {s['seeds']} | {s['steps']} | {s['base_pass_at_1_mean']:.3f} "
                 f"| {pm('final_pass_at_1')} | {pm('best_pass_at_1')} | {pm('final_reward')} "
                 f"| {pm('final_entropy')} | {s['seconds_mean']:.0f} |")
  return "\n".join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cfg = _CONFIG.value
  if _STEPS.value is not None:
    cfg.steps = _STEPS.value
  os.makedirs(_WORKDIR.value, exist_ok=True)
  start = time.perf_counter()
  rows = run_all(cfg, _WORKDIR.value, _LOSSES.value, _SEEDS.value,
                 log=lambda s: print(s, flush=True))
  summary = summarise(rows, _WORKDIR.value)
  path = plot(rows, _WORKDIR.value)
  print()
  print(format_summary(summary))
  print(f"\n{len(rows)} runs in {time.perf_counter() - start:.0f}s. Plots: {path}  "
        f"Tables: {os.path.join(_WORKDIR.value, 'summary.csv')}, "
        f"{os.path.join(_WORKDIR.value, 'curves.csv')}")


if __name__ == "__main__":
  app.run(main)
