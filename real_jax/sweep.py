r"""Run a config's sweep: one folder per point, finished points skipped, failures survived.

  python -m real_jax.sweep --config=experiments/configs/sweep_tau.py --workdir=DIR

The config file's `get_sweep()` returns a list of override dicts (dotted keys
allowed, e.g. `{"loss": "real", "tau": 0.5, "seed": 0}`). Points that differ
only in `seed` and `tau` are trained together, as one vmapped program
(`real_jax.train_scan`), so a grid of seeds and temperatures costs about one
run on a CPU. Every point gets `DIR/<name>/` with `overrides.json`,
`metrics.jsonl` and, once finished, `DONE` (its final figures); a point whose
group raised gets `FAILED` (the traceback) and the sweep goes on. Started
again, the runner skips `DONE` points and re-runs the others from the start
(the unit of work is a whole run of a group). At the end it writes
`DIR/summary.csv` and `DIR/sweep.png` (final held-out pass@1 and reward against
each swept axis, mean and spread over seeds) and exits 1 if any point failed.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import os
import re
import sys
import time
import traceback
from typing import Callable

import matplotlib
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from real_jax import train_scan

VECTORISED = ("seed", "tau")  # axes trained together in one program


def load_config_module(path: str):
  spec = importlib.util.spec_from_file_location("sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def product(**axes) -> list[dict]:
  """`product(loss=["real", "grpo"], seed=[0, 1])` -> every combination, as override dicts."""
  names = list(axes)
  return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


def point_name(overrides: dict) -> str:
  text = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
  return re.sub(r"[^A-Za-z0-9_.,=-]", "_", text)


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    for key, value in overrides.items():
      node = cfg
      *parents, leaf = key.split(".")
      for p in parents:
        node = node[p]
      if leaf not in node:
        raise ValueError(f"sweep override {key!r}: the config has no such field.")
      node[leaf] = value
  return cfg


def run_sweep(cfg: ml_collections.ConfigDict, points: list[dict], workdir: str, *,
              log: Callable[[str], None] = print,
              run_group: Callable | None = None) -> dict:
  """Runs the points not yet done; returns `{"done": [...], "failed": [...], "skipped": [...]}`."""
  run_group = run_group or _run_group
  os.makedirs(workdir, exist_ok=True)
  groups: dict = {}
  for p in points:
    rest = {k: v for k, v in p.items() if k not in VECTORISED}
    groups.setdefault(json.dumps(rest, sort_keys=True), []).append(p)
  status = {"done": [], "failed": [], "skipped": []}
  for n, (key, members) in enumerate(groups.items(), 1):
    todo = [p for p in members
            if not os.path.exists(os.path.join(workdir, point_name(p), "DONE"))]
    status["skipped"] += [p for p in members if p not in todo]
    if not todo:
      log(f"[{n}/{len(groups)}] {key}: all {len(members)} points done, skipped")
      continue
    log(f"[{n}/{len(groups)}] {key}: {len(todo)} point(s) in one vmapped program")
    start = time.perf_counter()
    try:
      results = run_group(cfg, json.loads(key), todo)
    except Exception:  # noqa: BLE001  a failing point must not stop the sweep
      trace = traceback.format_exc()
      log(f"    FAILED: {trace.strip().splitlines()[-1]}")
      for p in todo:
        folder = os.path.join(workdir, point_name(p))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "FAILED"), "w") as f:
          f.write(trace)
      status["failed"] += todo
      continue
    for p, metrics in zip(todo, results):
      folder = os.path.join(workdir, point_name(p))
      _write_point(folder, p, metrics)
      status["done"].append(p)
    log(f"    done in {time.perf_counter() - start:.1f}s")
  return status


def _run_group(cfg, shared: dict, todo: list[dict]) -> list[dict]:
  """Trains the points of a group (same config but seed and tau) in one vmapped program."""
  group_cfg = apply_overrides(cfg, shared)
  metrics, _ = train_scan.run_seeds(
      group_cfg, [int(p.get("seed", group_cfg.seed)) for p in todo],
      taus=[float(p.get("tau", group_cfg.tau)) for p in todo], log=lambda _: None)
  return [{k: v[i] for k, v in metrics.items()} for i in range(len(todo))]


def _write_point(folder: str, overrides: dict, metrics: dict) -> None:
  os.makedirs(folder, exist_ok=True)
  failed = os.path.join(folder, "FAILED")
  if os.path.exists(failed):
    os.remove(failed)
  with open(os.path.join(folder, "overrides.json"), "w") as f:
    json.dump(overrides, f)
  train_scan.write_metrics(folder, metrics)
  final = {"eval_pass_at_1": float(metrics["eval_pass_at_1"]),
           "final_reward": float(np.mean(metrics["reward_mean"][-5:])),
           "final_entropy": float(np.mean(metrics["entropy"][-5:]))}
  with open(os.path.join(folder, "DONE"), "w") as f:  # written last: marks completion
    json.dump(final, f)


def summarise(points: list[dict], workdir: str) -> tuple[str, str | None]:
  rows = []
  for p in points:
    done = os.path.join(workdir, point_name(p), "DONE")
    if os.path.exists(done):
      with open(done) as f:
        rows.append({**p, **json.load(f)})
  path = os.path.join(workdir, "summary.csv")
  axes = sorted({k for p in points for k in p})
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=axes + ["eval_pass_at_1", "final_reward", "final_entropy"])
    writer.writeheader()
    writer.writerows(rows)
  swept = [a for a in axes if a != "seed" and len({json.dumps(p.get(a)) for p in points}) > 1]
  if not rows or not swept:
    return path, None
  fig, axs = plt.subplots(2, len(swept), figsize=(5 * len(swept), 7), squeeze=False)
  for j, axis in enumerate(swept):
    others = [a for a in swept if a != axis]
    for i, metric in enumerate(("eval_pass_at_1", "final_reward")):
      ax = axs[i, j]
      lines: dict = {}
      for r in rows:
        label = ", ".join(f"{o}={r.get(o)}" for o in others) or "all"
        lines.setdefault(label, {}).setdefault(r.get(axis), []).append(r[metric])
      for label, by_x in sorted(lines.items()):
        xs = sorted(by_x, key=lambda v: (isinstance(v, str), v))
        mean = [np.mean(by_x[x]) for x in xs]
        lo = [np.min(by_x[x]) for x in xs]
        hi = [np.max(by_x[x]) for x in xs]
        pos = np.arange(len(xs)) if any(isinstance(x, str) for x in xs) else np.asarray(xs, float)
        ax.errorbar(pos, mean, yerr=[np.subtract(mean, lo), np.subtract(hi, mean)], marker="o",
                    capsize=3, label=label)
        if any(isinstance(x, str) for x in xs):
          ax.set_xticks(pos, xs)
      ax.set_xlabel(axis)
      ax.set_ylabel({"eval_pass_at_1": "final held-out pass@1",
                     "final_reward": "training reward (last 5 steps)"}[metric])
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
  fig.suptitle("Sweep: mean over seeds, bars = min..max")
  fig.tight_layout()
  plot = os.path.join(workdir, "sweep.png")
  fig.savefig(plot, dpi=110)
  plt.close(fig)
  return path, plot


def main(argv, flags_):
  del argv
  from absl import logging  # noqa: PLC0415
  logging.set_verbosity(logging.WARNING)
  module = load_config_module(flags_["config"].value)
  cfg = module.get_config()
  points = module.get_sweep()
  workdir = flags_["workdir"].value
  start = time.perf_counter()
  print(f"sweep of {len(points)} points from {flags_['config'].value} into {workdir}", flush=True)
  status = run_sweep(cfg, points, workdir, log=lambda s: print(s, flush=True))
  summary, plot = summarise(points, workdir)
  print(f"\n{len(status['done'])} run, {len(status['skipped'])} skipped (done before), "
        f"{len(status['failed'])} failed, in {time.perf_counter() - start:.0f}s. "
        f"Summary: {summary}" + (f"  Plot: {plot}" if plot else ""))
  for p in status["failed"]:
    print(f"  FAILED: {point_name(p)} (see {os.path.join(workdir, point_name(p), 'FAILED')})")
  sys.exit(1 if status["failed"] else 0)


if __name__ == "__main__":
  import functools  # noqa: PLC0415

  from absl import app, flags  # noqa: PLC0415
  _flags = {"config": flags.DEFINE_string("config", None, "Config file with get_config() and "
                                          "get_sweep().", required=True),
            "workdir": flags.DEFINE_string("workdir", None, "Sweep folder.", required=True)}
  app.run(functools.partial(main, flags_=_flags))
