"""A finished sweep's summary: `summary.csv`, its Markdown table and its plots.

  summary_csv, plots = summarise(points, workdir)

`summarise` writes `summary.csv` (and its mean +- std rows as a Markdown
table, `summary.md`, the file the results pages include): one row per point (`row=point`) and, for
every group of points that differ only in seed, a `row=mean` and a `row=std`
row (the sample standard deviation over seeds, ddof=1); `curves.png`, the
training curves of each group (mean over seeds, band min..max); and
`sweep.png`, the final numbers against each swept axis. `format_summary` turns
`summary.csv` into the Markdown table the results pages show.
"""

from __future__ import annotations

import csv
import json
import os

import matplotlib.pyplot as plt
import numpy as np

from real_jax import metric_names
from real_jax import palette
from real_jax.training import metrics as metrics_lib
from real_jax.training.sweep import done_marker
from real_jax.training.sweep import point_name

__all__ = [
    "CURVES",
    "SUMMARY_COLUMNS",
    "summarise",
    "plot_mean_band",
    "format_summary",
]

# The summary numbers of a point, in `summary.csv`'s column order.
SUMMARY_COLUMNS = tuple(column for column, _, _ in metrics_lib.RUN_SUMMARY)
SUMMARY_LABELS = {"final_pass_at_1": "final held-out pass@1",
                  "final_reward": f"training reward (last {metrics_lib.TAIL} steps)"}
CURVES = ("reward_mean", "eval_pass_at_1", "entropy", "weight_neg_max")
CURVE_LABELS = {"reward_mean": "training reward (batch mean)",
                "eval_pass_at_1": "held-out pass@1 (greedy)",
                "entropy": "policy entropy (nats / token)",
                "weight_neg_max": "largest negative weight |w|"}


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
      numbers = json.load(f)
    rows.append({"row": "point", **p, "n_seeds": 1, **numbers})
    key = json.dumps({a: p.get(a) for a in axes if a != "seed"}, sort_keys=True)
    by_group.setdefault(key, []).append(rows[-1])
  for key, members in by_group.items():
    for stat in ("mean", "std"):
      row = {"row": stat, **json.loads(key), "seed": "", "n_seeds": len(members)}
      for fig in SUMMARY_COLUMNS:
        v = [m[fig] for m in members if m[fig] is not None]
        if stat == "mean":
          row[fig] = float(np.mean(v)) if v else None
        else:  # the sample standard deviation; undefined for one seed
          row[fig] = float(np.std(v, ddof=1)) if len(v) > 1 else None
      rows.append(row)
  path = os.path.join(workdir, "summary.csv")
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["row", *axes, "n_seeds", *SUMMARY_COLUMNS])
    writer.writeheader()
    writer.writerows(rows)
  with open(os.path.join(workdir, "summary.md"), "w") as f:
    f.write(format_summary(path) + "\n")
  plots = []
  if done:
    plots.append(_plot_curves(done, workdir, swept))
    if swept:
      plots.append(_plot_finals([r for r in rows if r["row"] == "point"], workdir, swept))
  return path, plots


def plot_mean_band(ax, series: list[tuple[np.ndarray, np.ndarray]], label: str, *,
                   window: int = 5, smooth: bool = True, alpha: float = 0.15,
                   color: str | None = None) -> None:
  """One line per group of runs: the mean over runs, with a min..max band.

  `series` holds each run's `(steps, values)` (`metrics.series`); a step where
  the metric is undefined for some run is dropped for all, so the runs stay
  aligned. With `smooth`, a moving average over `window` steps evens out
  per-step batch noise. `color` None: the axes' next colour.
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
  line, = ax.plot(steps, stack.mean(0), label=label, color=color)
  ax.fill_between(steps, stack.min(0), stack.max(0), alpha=alpha, color=line.get_color())


def _plot_curves(done: list[dict], workdir: str, swept: list[str], window: int = 5) -> str:
  groups: dict = {}
  colors = {}
  for p in done:
    if swept == ["loss"]:
      colors[_label(p, swept)] = palette.color(p["loss"])
    groups.setdefault(_label(p, swept), []).append(
        metrics_lib.read_metrics(os.path.join(workdir, point_name(p))))
  fig, axs = plt.subplots(2, 2, figsize=(12, 8))
  for ax, metric in zip(axs.flat, CURVES, strict=True):
    for label, runs in sorted(groups.items()):
      plot_mean_band(ax, [metrics_lib.series(recs, metric) for recs in runs],
                     f"{label} ({len(runs)} seeds)", window=window,
                     smooth=metric != metric_names.EVAL_METRIC, color=colors.get(label))
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
      ax.set_ylabel(SUMMARY_LABELS[fig_name])
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
  stds = {tuple((k, v) for k, v in r.items() if k not in SUMMARY_COLUMNS and k != "row"): r
          for r in rows if r["row"] == "std"}
  if not means:
    return "(no finished points)"
  axes = [k for k in rows[0] if k not in SUMMARY_COLUMNS and k not in ("row", "seed", "n_seeds")]
  shown = ("base_pass_at_1", "final_pass_at_1", "best_pass_at_1", "final_reward",
           "final_entropy", "max_weight_neg")
  lines = ["| " + " | ".join([*axes, "seeds", *shown]) + " |",
           "|" + " --- |" * (len(axes) + 1 + len(shown))]
  for m in means:
    s = stds[tuple((k, v) for k, v in m.items() if k not in SUMMARY_COLUMNS and k != "row")]
    cells = [m[a] for a in axes] + [m["n_seeds"]]
    for fig in shown:
      if not m[fig]:
        cells.append("-")
      else:
        cells.append(f"{float(m[fig]):.3f}" + (f" +- {float(s[fig]):.3f}" if s[fig] else ""))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
