r"""The sweep runner: one folder per point, finished points skipped, failures survived.

  status = run_sweep(cfg, points, workdir)   # or: python -m real_jax.sweep --config=... --workdir=...
  summary_csv, plots = summarise(points, workdir)

A config file's `get_sweep()` returns a list of override dicts (dotted keys
allowed), e.g. `product(loss=["real", "grpo"], seed=[0, 1, 2])`. Points that
differ only in `seed`, `tau` and `lr` train together as one vmapped program
(`scan.run_points`). Each point gets `workdir/<name>/` with `overrides.json`,
`metrics.jsonl` (the one schema, step 0 to the last step) and, once
finished, `DONE` (its summary figures). A group that raises marks its points
`FAILED` (with the traceback) and the sweep goes on. Started again, the runner
skips groups whose points are all `DONE` and re-runs any other group whole,
from the start, writing the points it lacks: a point's numbers depend on the
program it was vmapped in, so re-running only the missing ones would give
an interrupted sweep different numbers from an uninterrupted one.

In a multi-process run (`real_jax.distributed`) every process runs every
group over a mesh of all devices; process 0 decides which groups are done
and tells the others, and only process 0 writes files.

`summarise` writes `summary.csv`: one row per point (`row=point`) and, for
every group of points that differ only in seed, a `row=mean` and a `row=std`
row (the sample standard deviation over seeds, ddof=1); `curves.png`, the training curves of each group (mean over
seeds, band min..max); and `sweep.png`, the final figures against each swept
axis.
"""

from __future__ import annotations

from collections.abc import Callable
import csv
import functools
import importlib.util
import itertools
import json
import os
import re
import time
import traceback

import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from real_jax import distributed
from real_jax.training import metrics as metrics_lib
from real_jax.training import scan

__all__ = [
    "CURVES",
    "FIGURES",
    "load_config_module",
    "load_sweep",
    "run_config_sweep",
    "status_line",
    "product",
    "point_name",
    "done_marker",
    "apply_overrides",
    "run_sweep",
    "point_figures",
    "summarise",
    "plot_mean_band",
    "format_summary",
]

VECTORISED = ("seed", "tau", "lr")  # axes trained together in one program
TAIL = 10  # final_* figures average the last TAIL steps (noisy per-step batches)
# The summary figures of a point, in `summary.csv`'s column order.
FIGURES = ("base_pass_at_1", "final_pass_at_1", "best_pass_at_1", "final_reward",
           "final_entropy", "min_entropy", "final_length", "max_weight_neg", "max_kl_old")
FIGURE_LABELS = {"final_pass_at_1": "final held-out pass@1",
                 "final_reward": f"training reward (last {TAIL} steps)"}
CURVES = ("reward_mean", "eval_pass_at_1", "entropy", "weight_neg_max")
CURVE_LABELS = {"reward_mean": "training reward (batch mean)",
                "eval_pass_at_1": "held-out pass@1 (greedy)",
                "entropy": "policy entropy (nats / token)",
                "weight_neg_max": "largest negative weight |w|"}


def load_config_module(path: str):
  spec = importlib.util.spec_from_file_location("sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(config_string: str) -> list[dict]:
  """The points of `path[:arg]`'s `get_sweep([arg])`, as config_flags passes `arg` to `get_config`."""
  path, _, arg = config_string.partition(":")
  module = load_config_module(path)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"--config: {path} defines no get_sweep().")
  return module.get_sweep(arg) if arg else module.get_sweep()


def run_config_sweep(cfg: ml_collections.ConfigDict, config_string: str, workdir: str, *,
                     log: Callable[[str], None] = print, mesh=None) -> tuple[list[dict], dict]:
  """Loads `config_string`'s points (`load_sweep`) and runs them; returns `(points, status)`.

  Raises:
    ValueError: when the config file defines no `get_sweep()`.
  """
  points = load_sweep(config_string)
  log(f"{len(points)} points from {config_string} into {workdir}; {distributed.describe()}, "
      f"mesh {dict(mesh.shape) if mesh else 'none'}")
  return points, run_sweep(cfg, points, workdir, log=log, mesh=mesh)


def status_line(status: dict, seconds: float) -> str:
  return (f"{len(status['done'])} run, {len(status['skipped'])} skipped (done before), "
          f"{len(status['failed'])} failed, in {seconds:.0f}s.")


def product(**axes) -> list[dict]:
  """`product(loss=["real", "grpo"], seed=[0, 1])` -> every combination, as override dicts."""
  names = list(axes)
  return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


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


def _groups(points: list[dict]) -> dict[str, list[dict]]:
  groups: dict = {}
  for p in points:
    rest = {k: v for k, v in p.items() if k not in VECTORISED}
    groups.setdefault(json.dumps(rest, sort_keys=True), []).append(p)
  return groups


def done_marker(workdir: str, overrides: dict) -> str:
  """The file whose presence says the point `overrides` of the sweep in `workdir` finished."""
  return os.path.join(workdir, point_name(overrides), "DONE")


def run_sweep(cfg: ml_collections.ConfigDict, points: list[dict], workdir: str, *,
              log: Callable[[str], None] = print, run_group: Callable | None = None,
              mesh=None) -> dict:
  """Runs the groups not yet done; returns `{"done": [...], "failed": [...], "skipped": [...]}`.

  `run_group(group_cfg, members) -> [run metrics per point]` trains one group
  (default: `scan.run_points` over `mesh`); tests pass a stand-in.
  """
  run_group = run_group or functools.partial(_run_group, log=log, mesh=mesh)
  lead = distributed.is_lead()
  if lead:
    os.makedirs(workdir, exist_ok=True)
  groups = _groups(points)
  # Process 0's view of the folder decides for every process, so that all
  # of them run the same groups in the same order.
  finished = distributed.broadcast_from_lead(
      [[os.path.exists(done_marker(workdir, p)) for p in members]
       for members in groups.values()], "finished sweep points")
  status = {"done": [], "failed": [], "skipped": []}
  for n, ((key, members), done) in enumerate(zip(groups.items(), finished, strict=True), 1):
    if all(done):
      status["skipped"] += members
      log(f"[{n}/{len(groups)}] {key}: all {len(members)} points done, skipped")
      continue
    missing = [p for p, d in zip(members, done, strict=True) if not d]
    status["skipped"] += [p for p, d in zip(members, done, strict=True) if d]
    log(f"[{n}/{len(groups)}] {key}: {len(members)} point(s) in one vmapped program"
        + (f" ({len(missing)} to write)" if len(missing) < len(members) else ""))
    start = time.perf_counter()
    try:
      group_cfg = apply_overrides(cfg, json.loads(key))
      results = run_group(group_cfg, members)
    except Exception:
      trace = traceback.format_exc()
      log(f"    FAILED: {trace.strip().splitlines()[-1]}")
      if lead:
        for p in missing:
          folder = os.path.join(workdir, point_name(p))
          os.makedirs(folder, exist_ok=True)
          with open(os.path.join(folder, "FAILED"), "w") as f:
            f.write(trace)
      status["failed"] += missing
      continue
    for p, run, d in zip(members, results, done, strict=True):
      if not d:
        if lead:
          _write_point(os.path.join(workdir, point_name(p)), p,
                       metrics_lib.run_records(run, group_cfg.steps, group_cfg.eval_every))
        status["done"].append(p)
    log(f"    done in {time.perf_counter() - start:.1f}s")
  return status


def _run_group(group_cfg: ml_collections.ConfigDict, members: list[dict], log=print,
               mesh=None) -> list[dict]:
  runs, _ = scan.run_points(
      group_cfg, [int(p.get("seed", group_cfg.seed)) for p in members],
      taus=[float(p.get("tau", group_cfg.tau)) for p in members],
      lrs=[float(p.get("lr", group_cfg.lr)) for p in members], mesh=mesh,
      log=lambda line: log("    " + line))
  return [scan.point(runs, i) for i in range(len(members))]


def point_figures(recs: list[dict]) -> dict:
  """`FIGURES` of one run's records (None where a figure is undefined)."""
  def values(metric):
    return metrics_lib.series(recs, metric)[1]

  def agg(fn, metric, tail=None):
    v = values(metric)
    v = v[-tail:] if tail else v
    return float(fn(v)) if len(v) else None

  evals = values(metrics_lib.EVAL_METRIC)
  return {
      "base_pass_at_1": float(evals[0]) if len(evals) else None,
      "final_pass_at_1": float(evals[-1]) if len(evals) else None,
      "best_pass_at_1": float(evals.max()) if len(evals) else None,
      "final_reward": agg(np.mean, "reward_mean", TAIL),
      "final_entropy": agg(np.mean, "entropy", TAIL),
      "min_entropy": agg(np.min, "entropy"),
      "final_length": agg(np.mean, "response_length", TAIL),
      "max_weight_neg": agg(np.max, "weight_neg_max"),
      "max_kl_old": agg(np.max, "kl_old"),
  }


def _write_point(folder: str, overrides: dict, recs: list[dict]) -> None:
  os.makedirs(folder, exist_ok=True)
  failed = os.path.join(folder, "FAILED")
  if os.path.exists(failed):
    os.remove(failed)
  with open(os.path.join(folder, "overrides.json"), "w") as f:
    json.dump(overrides, f)
  metrics_lib.write_jsonl(os.path.join(folder, "metrics.jsonl"), recs, mode="w")
  with open(os.path.join(folder, "DONE"), "w") as f:  # written last: marks completion
    json.dump(point_figures(recs), f)


# ---------------------------------------------------------------- summary ----


def _label(p: dict, axes: list[str]) -> str:
  return ", ".join(f"{a}={p.get(a)}" for a in axes) or "all"


def summarise(points: list[dict], workdir: str) -> tuple[str, list[str]]:
  """Writes `summary.csv`, `curves.png` and `sweep.png`; returns the csv path and the plots."""
  done = [p for p in points if os.path.exists(done_marker(workdir, p))]
  axes = sorted({k for p in points for k in p})
  swept = [a for a in axes if a != "seed" and len({json.dumps(p.get(a)) for p in points}) > 1]
  rows, by_group = [], {}
  for p in done:
    with open(done_marker(workdir, p)) as f:
      figures = json.load(f)
    rows.append({"row": "point", **p, "n_seeds": 1, **figures})
    key = json.dumps({a: p.get(a) for a in axes if a != "seed"}, sort_keys=True)
    by_group.setdefault(key, []).append(rows[-1])
  for key, members in by_group.items():
    for stat in ("mean", "std"):
      row = {"row": stat, **json.loads(key), "seed": "", "n_seeds": len(members)}
      for fig in FIGURES:
        v = [m[fig] for m in members if m[fig] is not None]
        if stat == "mean":
          row[fig] = float(np.mean(v)) if v else None
        else:  # the sample standard deviation; undefined for one seed
          row[fig] = float(np.std(v, ddof=1)) if len(v) > 1 else None
      rows.append(row)
  path = os.path.join(workdir, "summary.csv")
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["row", *axes, "n_seeds", *FIGURES])
    writer.writeheader()
    writer.writerows(rows)
  plots = []
  if done:
    plots.append(_plot_curves(done, workdir, swept))
    if swept:
      plots.append(_plot_finals([r for r in rows if r["row"] == "point"], workdir, swept))
  return path, plots


def plot_mean_band(ax, series: list[tuple[np.ndarray, np.ndarray]], label: str, *,
                   window: int = 5, smooth: bool = True, alpha: float = 0.15) -> None:
  """One line per group of runs: the mean over runs, with a min..max band.

  `series` holds each run's `(steps, values)` (`metrics.series`); a step where
  the metric is undefined for some run is dropped for all, so the runs stay
  aligned. With `smooth`, a moving average over `window` steps evens out
  per-step batch noise.
  """
  if not series:
    return
  common = sorted(set.intersection(*(set(s.tolist()) for s, _ in series)))
  if not common:
    return
  stack = np.stack([v[np.isin(s, common)] for s, v in series])
  steps = np.asarray(common)
  if smooth and len(steps) >= window:
    kernel = np.ones(window) / window
    stack = np.stack([np.convolve(v, kernel, mode="valid") for v in stack])
    steps = steps[window - 1:]
  line, = ax.plot(steps, stack.mean(0), label=label)
  ax.fill_between(steps, stack.min(0), stack.max(0), alpha=alpha, color=line.get_color())


def _plot_curves(done: list[dict], workdir: str, swept: list[str], window: int = 5) -> str:
  groups: dict = {}
  for p in done:
    groups.setdefault(_label(p, swept), []).append(
        metrics_lib.read_metrics(os.path.join(workdir, point_name(p))))
  fig, axs = plt.subplots(2, 2, figsize=(12, 8))
  for ax, metric in zip(axs.flat, CURVES, strict=True):
    for label, runs in sorted(groups.items()):
      plot_mean_band(ax, [metrics_lib.series(recs, metric) for recs in runs],
                     f"{label} ({len(runs)} seeds)", window=window,
                     smooth=metric != metrics_lib.EVAL_METRIC)
    ax.set_xlabel("RL step")
    ax.set_ylabel(CURVE_LABELS[metric])
    ax.grid(alpha=0.3)
  axs[0, 0].legend(fontsize=8)
  fig.suptitle("Mean over seeds (band: min..max); per-step curves smoothed over "
               f"{window} steps")
  fig.tight_layout()
  path = os.path.join(workdir, "curves.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _plot_finals(rows: list[dict], workdir: str, swept: list[str]) -> str:
  fig, axs = plt.subplots(2, len(swept), figsize=(5 * len(swept), 7), squeeze=False)
  for j, axis in enumerate(swept):
    others = [a for a in swept if a != axis]
    for i, fig_name in enumerate(("final_pass_at_1", "final_reward")):
      ax = axs[i, j]
      lines: dict = {}
      for r in rows:
        if r[fig_name] is not None:
          lines.setdefault(_label(r, others), {}).setdefault(r.get(axis), []).append(r[fig_name])
      for label, by_x in sorted(lines.items()):
        xs = sorted(by_x, key=lambda v: (isinstance(v, str), v))
        mean = np.array([np.mean(by_x[x]) for x in xs])
        lo = np.array([np.min(by_x[x]) for x in xs])
        hi = np.array([np.max(by_x[x]) for x in xs])
        categorical = any(isinstance(x, str) for x in xs)
        pos = np.arange(len(xs)) if categorical else np.asarray(xs, float)
        ax.errorbar(pos, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=label)
        if categorical:
          ax.set_xticks(pos, xs)
      ax.set_xlabel(axis)
      ax.set_ylabel(FIGURE_LABELS[fig_name])
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
  fig.suptitle("Sweep: mean over seeds, bars = min..max")
  fig.tight_layout()
  path = os.path.join(workdir, "sweep.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def format_summary(summary_csv: str) -> str:
  """The mean +- std rows of `summary.csv` as a Markdown table."""
  with open(summary_csv) as f:
    rows = list(csv.DictReader(f))
  means = [r for r in rows if r["row"] == "mean"]
  stds = {tuple((k, v) for k, v in r.items() if k not in FIGURES and k != "row"): r
          for r in rows if r["row"] == "std"}
  if not means:
    return "(no finished points)"
  axes = [k for k in rows[0] if k not in FIGURES and k not in ("row", "seed", "n_seeds")]
  shown = ("base_pass_at_1", "final_pass_at_1", "best_pass_at_1", "final_reward",
           "final_entropy", "max_weight_neg")
  lines = ["| " + " | ".join([*axes, "seeds", *shown]) + " |",
           "|" + " --- |" * (len(axes) + 1 + len(shown))]
  for m in means:
    s = stds[tuple((k, v) for k, v in m.items() if k not in FIGURES and k != "row")]
    cells = [m[a] for a in axes] + [m["n_seeds"]]
    for fig in shown:
      if not m[fig]:
        cells.append("-")
      else:
        cells.append(f"{float(m[fig]):.3f}" + (f" +- {float(s[fig]):.3f}" if s[fig] else ""))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
