r"""A study over a sweep: honest learning-rate selection, bootstrap intervals, paired differences.

  report(points, workdir, out)   # after training.sweep.run_grid(cfg, points, workdir)

The points of the sweep cross `loss`, a regime, `lr` and `seed`. A regime is
the number of updates per step (`ppo_epochs x minibatches`) and, where the
sampler is not the trainer's policy, its `sampler_dtype` and `correction`
(`regime`: "16", "1 bf16", "1 bf16 tis_seq"). Their runs log held-out
pass@1 on a validation set (`eval_pass_at_1`) and on a disjoint test set
(`test_pass_at_1`). `report` writes to `out`:

- `per_seed.csv`: one row per point: final validation and test pass@1, final
  reward and entropy (means over the last `metrics.TAIL` steps), minimum entropy, and
  each mechanism metric at the end (last `metrics.TAIL` steps) and at its worst over
  training (the maximum; the minimum for `score_pos_mean`).
- `summary.csv` (its headline columns as a Markdown table, `summary.md`, and its
  length and mismatch columns as another, `lengths.md`): per (loss, regime), the
  learning rate chosen on validation
  pass@1 alone (the best mean over seeds; ties go to the smaller rate), then
  at that rate the mean and a 95% bootstrap interval over seeds of every
  column, and the paired difference of REAL's test pass@1 minus this loss's
  (seed by seed, each loss at its own selected rate) with its interval.
- `grid.csv` and `grid.png`: for every (loss, regime, lr), means over seeds of
  validation pass@1, minimum entropy and the worst mechanism metrics: the
  landscape the selection was made on, and where each loss breaks.
- `test_pass_vs_updates.png`, `entropy.png`, `mechanism.png`, `length.png`
  (and `mismatch.png` where a regime has one): test pass@1 for each regime;
  entropy, the largest negative weight, the top-negative share, the KL to the
  sampling policy, the mean lengths of correct and wrong rollouts, the
  longest wrong one and the truncated share (and the sampler/trainer
  mismatch) against step, one panel per regime.
"""

from __future__ import annotations

import csv
import os

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np

from real_jax import losses
from real_jax import metric_names
from real_jax import palette
from real_jax.reporting import stats
from real_jax.reporting import sweep as report_sweep
from real_jax.training import metrics as metrics_lib
from real_jax.training import sweep as sweep_lib

__all__ = [
    "CONFIDENCE",
    "COLUMNS",
    "GRID_COLUMNS",
    "updates_per_step",
    "regime",
    "arm",
    "load_comparisons",
    "comparison_prefix",
    "PER_SEED",
    "per_seed_rows",
    "select_learning_rates",
    "summary_rows",
    "grid_rows",
    "format_summary",
    "format_lengths",
    "read_summary",
    "read_per_seed",
    "write_tables",
    "per_seed_figures",
    "report",
]

CONFIDENCE = stats.CONFIDENCE
REFERENCE = "real"  # the arm every other is compared with, unless a config declares another
COMPARED = ("test_pass_at_1",)  # the columns compared, unless a config declares others
MECHANISM = ("score_pos_mean", "score_neg_mean", "score_abs_p50", "score_abs_p90",
             "score_abs_max", "grad_cosine", "weight_neg_max", "neg_top_share",
             "neg_dominated_fraction", "clip_fraction", "kl_old", "grad_norm",
             "grad_norm_max", *metric_names.RATIO_NEG)
_LOW_END = ("score_pos_mean", "grad_cosine")  # summarised by their 10% quantile over steps
LENGTH = ("length_correct", "length_wrong", "length_wrong_max", "truncated_fraction")
MISMATCH = ("mismatch_kl", "corrected_fraction")
# How each per-seed column is read from a run's records (`metrics.summarise_run`):
# evaluations at their last value, the rest as the mean of the last TAIL steps
# ("_final") and at their far end over training ("_q90": the 90% quantile over
# steps; "_q10", the 10% one, for `score_pos_mean` and `grad_cosine`, whose
# far end is low), not their extreme: a maximum over
# 100 noisy steps is decided by one batch, and grows with the number of steps
# and shrinks with the batch (studies committed before kept `_worst`, the
# extreme, and `min_entropy` / `max_entropy`; the tables read either).
PER_SEED = (
    ("val_pass_at_1", metric_names.EVAL_METRIC, "last"),
    ("test_pass_at_1", metric_names.TEST_METRIC, "last"),
    *((m, m, "last") for m in metric_names.SAMPLED_METRICS),
    # ... and at step 0, the base model's.
    *((f"base_{m}", m, "first") for m in metric_names.SAMPLED_METRICS),
    # The net weight per group in each pass-rate bin, over the whole run: a
    # bin holds few groups at any one step.
    *((f"{m}_mean", m, "mean") for m in metric_names.NET_WEIGHT),
    ("final_reward", "reward_mean", "tail"),
    ("final_entropy", "entropy", "tail"),
    ("entropy_q10", "entropy", "q10"),
    ("entropy_q90", "entropy", "q90"),
    *((f"{m}_{when}", m, how) for m in MECHANISM
      for when, how in (("final", "tail"), ("q10", "q10") if m in _LOW_END else ("q90", "q90"))),
    # Lengths and the mismatch at the end and at their high end.
    *((f"{m}_{when}", m, how) for m in LENGTH + MISMATCH
      for when, how in (("final", "tail"), ("q90", "q90"))),
)
# A high-end column's name in the studies committed before the quantiles.
_EXTREME = {"entropy_q10": "min_entropy", "entropy_q90": "max_entropy",
            **{f"{m}_{'q10' if m in _LOW_END else 'q90'}": f"{m}_worst"
               for m in MECHANISM + LENGTH + MISMATCH}}
COLUMNS = tuple(column for column, _, _ in PER_SEED)
KEYS = ("arm", "loss", "updates_per_step", "regime", "ppo_epochs", "minibatches", "lr", "seed")
# The point keys a study crosses on its own axes; any other key of a point
# (tau, a loss hyperparameter) makes the run an arm of its own.
# `compare_loss` only adds a diagnostic (`grad_cosine`): the run trains as without it.
_AXES = ("loss", "ppo_epochs", "minibatches", "lr", "seed", "sampler_lag", "sampler_dtype",
         "correction", "compare_loss", "base.band")


def updates_per_step(point: dict, cfg) -> int:
  return int(point.get("ppo_epochs", cfg.ppo_epochs)) * int(point.get("minibatches",
                                                                       cfg.minibatches))


def regime(point: dict, cfg) -> str:
  """The point's regime label: its updates per step, then its sampler's lag, dtype and
  correction, and its own base model (`base.band`, by the pass@1 it starts from), if any.

  >>> import ml_collections
  >>> cfg = ml_collections.ConfigDict({"ppo_epochs": 1, "minibatches": 1,
  ...                                  "sampler_dtype": "float32", "correction": "none"})
  >>> regime({"ppo_epochs": 4, "minibatches": 4}, cfg), regime(
  ...     {"sampler_dtype": "bfloat16", "correction": "tis_seq"}, cfg)
  ('16', '1 bf16 tis_seq')
  >>> regime({"base.band": (0.8, 1.0)}, cfg)
  '1 base0.8'
  """
  label = str(updates_per_step(point, cfg))
  lag = int(point.get("sampler_lag", cfg.get("sampler_lag", 0)))
  if lag:
    label += f" lag{lag}"
  sampler = point.get("sampler_dtype", cfg.get("sampler_dtype", "float32"))
  correction = point.get("correction", cfg.get("correction", "none"))
  if sampler != "float32":
    label += " " + {"bfloat16": "bf16"}.get(sampler, sampler)
  if correction != "none":
    label += " " + correction
  if "base.band" in point:
    label += f" base{float(point['base.band'][0]):g}"
  return label


def arm(point: dict, cfg) -> str:
  """The point's arm: its loss, and any setting it changes besides the study's axes.

  >>> import ml_collections
  >>> cfg = ml_collections.ConfigDict({"loss": "grpo"})
  >>> arm({"lr": 1e-4}, cfg), arm({"loss": "real", "tau": 0.05, "seed": 3}, cfg)
  ('grpo', 'real tau=0.05')
  """
  extra = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in sorted(point.items()) if k not in _AXES)
  return " ".join(x for x in (str(point.get("loss", cfg.loss)), extra) if x)


def load_comparisons(config_string: str) -> dict:
  """The comparisons a study's config declares before it runs, `get_comparisons([arg])`.

  Returns `{"reference": arm, "metrics": (column, ...), "primary": ((arm,
  regime, column), ...)}`: every other arm is compared with the reference in
  each regime, on each per-seed column of `metrics` (default: test pass@1);
  the primary ones are Holm-corrected among themselves, every other one among
  the rest and labelled exploratory. A declared primary `(arm, regime)`
  names the first metric. A config without `get_comparisons` declares none:
  REAL is the reference, test pass@1 the metric, and every comparison is
  exploratory.
  """
  path, _, arg = config_string.partition(":")
  module = sweep_lib.load_config_module(path)
  declared = (module.get_comparisons(arg) if arg else module.get_comparisons()
              ) if hasattr(module, "get_comparisons") else {}
  unknown = set(declared) - {"reference", "primary", "metrics"}
  if unknown:
    raise ValueError(f"get_comparisons() in {path} returns {sorted(unknown)}; "
                     "it may return 'reference', 'metrics' and 'primary'.")
  metrics = tuple(declared.get("metrics", COMPARED))
  bad = set(metrics) - set(COLUMNS)
  if bad:
    raise ValueError(f"get_comparisons() in {path}: metrics {sorted(bad)} are no per-seed "
                     f"column; known: {', '.join(COLUMNS)}.")
  primary = tuple((str(c[0]), str(c[1]), str(c[2]) if len(c) > 2 else metrics[0])
                  for c in declared.get("primary", ()))
  return {"reference": declared.get("reference", REFERENCE), "metrics": metrics,
          "primary": primary}


def comparison_prefix(metric: str) -> str:
  """The summary's columns of `reference - this arm` in `metric` start with this.

  >>> comparison_prefix("test_pass_at_1"), comparison_prefix("probe_entropy")
  ('reference_minus_this_test', 'reference_minus_this_probe_entropy')
  """
  return "reference_minus_this_" + ("test" if metric == "test_pass_at_1" else metric)


def _regime_order(label) -> tuple:
  """Regimes in order: by updates per step, then by lag, then plain before mismatched."""
  updates, _, rest = str(label).partition(" ")
  lag = rest.split(" ")[0][len("lag"):] if rest.startswith("lag") else "0"
  return (int(updates), int(lag), rest)


def _regime_title(label) -> str:
  updates, _, rest = str(label).partition(" ")
  rest = rest.replace("base", "base model at greedy pass@1 ")
  return f"{updates} update(s) per step" + (f", {rest}" if rest else "")


def per_seed_rows(points: list[dict], workdir: str, cfg) -> list[dict]:
  rows = []
  for p in points:
    if not os.path.exists(sweep_lib.done_marker(workdir, p)):
      continue
    folder = os.path.join(workdir, sweep_lib.point_name(p))
    rows.append({"arm": arm(p, cfg), "loss": p.get("loss", cfg.loss),
                 "updates_per_step": updates_per_step(p, cfg),
                 "regime": regime(p, cfg), "ppo_epochs": p.get("ppo_epochs", cfg.ppo_epochs),
                 "minibatches": p.get("minibatches", cfg.minibatches),
                 "lr": float(p.get("lr", cfg.lr)), "seed": int(p.get("seed", cfg.seed)),
                 "tau": float(p.get("tau", cfg.tau)),
                 **metrics_lib.summarise_run(metrics_lib.read_metrics(folder), PER_SEED)})
  return rows


def _regime_of(row: dict) -> str:
  """A row's regime label (rows written before regimes had labels: their updates per step)."""
  return str(row.get("regime", row["updates_per_step"]))


def _arm_of(row: dict) -> str:
  """A row's arm (rows written before arms: their loss)."""
  return str(row.get("arm") or row["loss"])


def select_learning_rates(rows: list[dict]) -> dict[tuple[str, str], float]:
  """`(arm, regime) -> lr` with the best mean validation pass@1 (ties: smaller lr)."""
  scores: dict = {}
  for r in rows:
    if r["val_pass_at_1"] is not None:
      scores.setdefault((_arm_of(r), _regime_of(r)), {}).setdefault(r["lr"], []).append(
          r["val_pass_at_1"])
  return {key: min(by_lr, key=lambda lr: (-np.mean(by_lr[lr]), lr))
          for key, by_lr in scores.items()}


def summary_rows(rows: list[dict], *, reference: str = REFERENCE, primary: tuple = (),
                 metrics: tuple = COMPARED) -> list[dict]:
  """Per (arm, regime): the selected lr, t intervals of every column, the paired comparisons.

  Each comparison is `reference - this arm` in one column of `metrics`, seed
  by seed, each arm at its own selected rate: its mean, t interval, exact
  sign-flip p-value, and that p Holm-adjusted within its family: the declared
  `primary` `(arm, regime[, column])` (the column defaults to the first
  metric), or every other comparison (exploratory). The columns are
  `comparison_prefix(column)` + `_mean`, `_lo`, `_hi`, `_p`, `_p_holm`, and
  the family in `comparison` (test pass@1) or the prefix + `_comparison`.
  """
  chosen = select_learning_rates(rows)
  at = {key: {r["seed"]: r for r in rows
              if (_arm_of(r), _regime_of(r)) == key and r["lr"] == lr}
        for key, lr in chosen.items()}
  declared = {(str(c[0]), str(c[1]), str(c[2]) if len(c) > 2 else metrics[0]) for c in primary}
  missing = {c for c in declared if c[:2] not in at or c[2] not in metrics}
  if missing:
    raise ValueError(f"primary comparisons {sorted(missing)} name no (arm, regime) of the "
                     f"study or no compared metric; it has {sorted(at)} and {list(metrics)}.")
  out, families = [], {"primary": {}, "exploratory": {}}
  for (name, label), by_seed in sorted(at.items(),
                                       key=lambda kv: (_regime_order(kv[0][1]), kv[0][0])):
    first = next(iter(by_seed.values()))
    row = {"arm": name, "loss": first["loss"], "updates_per_step": first["updates_per_step"],
           "regime": label, "selected_lr": chosen[(name, label)], "n_seeds": len(by_seed)}
    for c in _columns(rows):
      values = [r[c] for r in by_seed.values() if r.get(c) is not None]
      row[f"{c}_mean"], row[f"{c}_lo"], row[f"{c}_hi"] = (
          stats.t_interval(values) if values else (None, None, None))
    ref = at.get((reference, label), {})
    for metric in metrics:
      seeds = sorted(s for s in set(ref) & set(by_seed)
                     if ref[s].get(metric) is not None and by_seed[s].get(metric) is not None)
      if name == reference or not seeds:
        continue
      d = stats.paired([ref[s][metric] for s in seeds], [by_seed[s][metric] for s in seeds])
      family = "primary" if (name, label, metric) in declared else "exploratory"
      prefix = comparison_prefix(metric)
      row.update({"reference": reference,
                  ("comparison" if metric == "test_pass_at_1" else f"{prefix}_comparison"): family,
                  "n_pairs": d["n"], **{f"{prefix}_{k}": d[k] for k in ("mean", "lo", "hi", "p")}})
      families[family][(name, label, metric)] = row
    out.append(row)
  for members in families.values():
    adjusted = stats.holm({key: r[f"{comparison_prefix(key[2])}_p"]
                           for key, r in members.items()})
    for key, r in members.items():
      r[f"{comparison_prefix(key[2])}_p_holm"] = adjusted[key]
  return out


GRID_COLUMNS = ("val_pass_at_1", "entropy_q10", "entropy_q90", "weight_neg_max_q90",
                "neg_dominated_fraction_q90", "kl_old_q90", "kl_old_final")


def _named(rows, column: str, suffix: str = "") -> str:
  """`column`, or its name in a study committed before the quantiles where `rows` use that."""
  rows = [rows] if isinstance(rows, dict) else rows
  old = _EXTREME.get(column)
  if old and not any(f"{column}{suffix}" in r for r in rows) and any(
      f"{old}{suffix}" in r for r in rows):
    return old
  return column


def _columns(rows: list[dict]) -> list[str]:
  """The per-seed columns `rows` hold, under the names they hold them (older studies lack some)."""
  return [c for c in (_named(rows, c) for c in COLUMNS) if any(c in r for r in rows)]


def grid_rows(rows: list[dict]) -> list[dict]:
  """Means over seeds of `GRID_COLUMNS` for every (loss, regime, lr); no test numbers."""
  cells: dict = {}
  for r in rows:
    cells.setdefault((_regime_of(r), _arm_of(r), r["lr"]), []).append(r)
  out = []
  for (label, name, lr), members in sorted(cells.items(),
                                           key=lambda kv: (_regime_order(kv[0][0]), kv[0][1:])):
    row = {"arm": name, "loss": members[0]["loss"],
           "updates_per_step": members[0]["updates_per_step"], "regime": label,
           "lr": lr, "n_seeds": len(members)}
    for c in (_named(rows, c) for c in GRID_COLUMNS):
      v = [m[c] for m in members if m.get(c) is not None]
      row[c] = float(np.mean(v)) if v else None
    out.append(row)
  return out


def _label_axes(ax, xlabel: str, ylabel: str, regime_label, legend: int = 7) -> None:
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(_regime_title(regime_label))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=legend)


def _save(fig, suptitle: str, path: str) -> str:
  fig.suptitle(suptitle)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _colour(arm_name: str):
  """An arm's colour: its objective's, or for a variant ("real tau=2") a shade of its loss's.

  The shade is fixed by the variant's own text, so an arm has one colour in
  every figure whatever else is drawn beside it.
  """
  own = palette.color(arm_name)
  if own is not None:
    return own
  loss, _, setting = arm_name.partition(" ")
  base = palette.color(loss)
  if base is None:
    return None
  mix = 0.3 + 0.4 * (sum(map(ord, setting)) % 7) / 6  # toward white: 0.3 .. 0.7
  rgb = matplotlib.colors.to_rgb(base)
  return tuple(c + (1 - c) * mix if sum(rgb) < 1.5 else c * (1 - mix) for c in rgb)


def _plot_grid(grid: list[dict], path: str) -> str:
  regimes = sorted({_regime_of(g) for g in grid}, key=_regime_order)
  fig, axs = plt.subplots(2, len(regimes), figsize=(5 * len(regimes), 7), squeeze=False,
                          sharey="row")
  for j, label in enumerate(regimes):
    low = _named(grid, "entropy_q10")
    for i, (col, what) in enumerate((
        ("val_pass_at_1", "final validation pass@1"),
        (low, "entropy, 10% quantile over steps" if low == "entropy_q10"
         else "minimum entropy over training"))):
      ax = axs[i, j]
      for name in sorted({_arm_of(g) for g in grid}):
        pts = sorted((g["lr"], g[col]) for g in grid
                     if _arm_of(g) == name and _regime_of(g) == label
                     and g.get(col) is not None)
        if pts:
          ax.plot(*zip(*pts, strict=True), marker="o", label=name, color=_colour(name))
      ax.set_xscale("log")
      _label_axes(ax, "learning rate", what, label)
  return _save(fig, "The selection landscape: means over seeds, validation data only", path)


def _write_csv(path: str, rows: list[dict]) -> None:
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def _curves(points, workdir, cfg, chosen, metric):
  """`regime -> arm -> (steps, [seeds, steps])` of `metric` at each selected lr."""
  out: dict = {}
  for p in points:
    label = regime(p, cfg)
    loss = arm(p, cfg)
    if chosen.get((loss, label)) != float(p.get("lr", cfg.lr)):
      continue
    if not os.path.exists(sweep_lib.done_marker(workdir, p)):
      continue
    folder = os.path.join(workdir, sweep_lib.point_name(p))
    steps, values = metrics_lib.series(metrics_lib.read_metrics(folder), metric)
    out.setdefault(label, {}).setdefault(loss, []).append((steps, values))
  return out


def _plot_regime_panels(points, workdir, cfg, chosen, metrics, path, window=5,
                        intervals=False):
  """One panel per (metric, regime), a line per arm: the mean over seeds with a min..max
  band smoothed over `window` steps, or with `intervals` its t interval, unsmoothed."""
  regimes = sorted({regime(p, cfg) for p in points}, key=_regime_order)
  fig, axs = plt.subplots(len(metrics), len(regimes), figsize=(5 * len(regimes),
                                                               3.6 * len(metrics)),
                          squeeze=False, sharey="row")
  for i, (metric, label) in enumerate(metrics):
    curves = _curves(points, workdir, cfg, chosen, metric)
    for j, label_j in enumerate(regimes):
      ax = axs[i, j]
      for loss, runs in sorted(curves.get(label_j, {}).items()):
        if intervals:
          _band(ax, runs, loss, _colour(loss))
        else:
          report_sweep.plot_mean_band(ax, runs, f"{loss} (lr {chosen[(loss, label_j)]:g})",
                                      window=window, alpha=0.12, color=_colour(loss))
      ax.set_title(_regime_title(label_j), fontsize=9)
      ax.set_xlabel("RL step")
      ax.set_ylabel(label)
      ax.grid(alpha=0.3)
      if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
      else:  # e.g. a metric logged only now and then, in a run shorter than that
        ax.text(0.5, 0.5, "no value logged", ha="center", va="center",
                transform=ax.transAxes, color="0.5")
  return _save(fig, f"Mean over seeds at each arm's selected lr, band: {CONFIDENCE:.0%} t "
               "interval" if intervals else "Mean over seeds at each loss's validation-selected "
               f"lr (band: min..max; smoothed over {window} steps)", path)


def _plot_test_vs_updates(summary: list[dict], path: str) -> str:
  regimes = sorted({_regime_of(r) for r in summary}, key=_regime_order)
  fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(regimes)), 4.5))
  losses = sorted({_arm_of(r) for r in summary})
  for k, loss in enumerate(losses):
    rs = sorted((r for r in summary if _arm_of(r) == loss),
                key=lambda r: _regime_order(_regime_of(r)))
    x = np.asarray([regimes.index(_regime_of(r)) for r in rs], float) + 0.06 * (
        k - len(losses) / 2)
    mean = np.asarray([r["test_pass_at_1_mean"] for r in rs])
    lo = np.asarray([r["test_pass_at_1_lo"] for r in rs])
    hi = np.asarray([r["test_pass_at_1_hi"] for r in rs])
    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=loss,
                color=_colour(loss))
  ax.set_xticks(range(len(regimes)), regimes)
  ax.set_xlabel("regime: updates per step (and the sampler, the correction)")
  ax.set_ylabel("final test pass@1")
  ax.set_title(f"Test pass@1 at the validation-selected lr; bars: {CONFIDENCE:.0%} t "
               "interval over seeds", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _plot_frontier(grid: list[dict], path: str) -> str:
  """Validation pass@1 against the KL to the sampling policy, one line per arm through its rates."""
  regimes = sorted({_regime_of(g) for g in grid}, key=_regime_order)
  fig, axs = plt.subplots(1, len(regimes), figsize=(5.2 * len(regimes), 4.4), squeeze=False,
                          sharey=True)
  for ax, label in zip(axs[0], regimes, strict=True):
    for name in sorted({_arm_of(g) for g in grid}):
      pts = sorted((g["kl_old_final"], g["val_pass_at_1"], g["lr"]) for g in grid
                   if _arm_of(g) == name and _regime_of(g) == label
                   and g.get("kl_old_final") is not None and g.get("val_pass_at_1") is not None)
      if pts:
        x, y, lr = zip(*pts, strict=True)
        ax.plot(x, y, marker="o", label=name, color=_colour(name))
        ax.annotate(f"{max(lr):g}", (x[-1], y[-1]), fontsize=6, xytext=(3, 0),
                    textcoords="offset points")
    ax.set_xscale("symlog", linthresh=1e-4)
    _label_axes(ax, "KL(pi_old || pi) at the last update, mean of the last 10 steps",
                "validation pass@1", label)
  return _save(fig, "The frontier: each point a learning rate (the largest labelled), means "
               "over seeds", path)


def _plot_per_seed(rows: list[dict], columns, ylabel: str, title: str, path: str,
                   transform=lambda r, v: v) -> str:
  """Every seed's value of `columns` against the learning rate, one panel per regime."""
  regimes = sorted({_regime_of(r) for r in rows}, key=_regime_order)
  arms = sorted({_arm_of(r) for r in rows if any(r.get(c) is not None for c, _ in columns)})
  fig, axs = plt.subplots(1, len(regimes), figsize=(5.2 * len(regimes), 4.2), squeeze=False,
                          sharey=True)
  for ax, label in zip(axs[0], regimes, strict=True):
    for k, name in enumerate(arms):
      for c, marker in columns:
        pts = [(r["lr"] * 1.08 ** (k - len(arms) / 2), transform(r, r[c])) for r in rows
               if _arm_of(r) == name and _regime_of(r) == label and r.get(c) is not None]
        if pts:
          ax.scatter(*zip(*pts, strict=True), s=10, marker=marker, alpha=0.6,
                     color=_colour(name),
                     label=f"{name} ({c})" if len(columns) > 1 else name)
    ax.set_xscale("log")
    _label_axes(ax, "learning rate", ylabel, label, legend=6)
  return _save(fig, title, path)


def _band(ax, runs, label: str, color) -> None:
  """Mean over runs at each step they share, with its t interval as a band."""
  common = sorted(set.intersection(*(set(steps.tolist()) for steps, _ in runs)))
  if not common:
    return
  stack = np.stack([values[np.isin(steps, common)] for steps, values in runs])
  bounds = np.asarray([stats.t_interval(column) for column in stack.T])
  ax.plot(common, bounds[:, 0], marker="o", markersize=3, label=label, color=color)
  if len(runs) > 1:
    ax.fill_between(common, bounds[:, 1], bounds[:, 2], alpha=0.15, color=color)


def _interval_points(ax, name: str, at: list) -> None:
  """At each `(x, values)` of `at`, the mean of the defined values with its t interval as a bar."""
  pts = [(x, *stats.t_interval(v)) for x, v in ((x, [u for u in vs if u is not None])
                                                for x, vs in at) if v]
  if pts:
    x, mean, lo, hi = (np.asarray(a, float) for a in zip(*pts, strict=True))
    ax.errorbar(x, mean, yerr=[np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)],
                marker="o", capsize=2, label=name, color=_colour(name))


def _plot_net_weight(rows: list[dict], path: str) -> str:
  """Each arm's net weight per group against the group's pass rate (per-seed run means)."""
  columns = [f"{m}_mean" for m in metric_names.NET_WEIGHT]
  edges = (0, *metric_names.NET_WEIGHT_BINS)
  centres = [(lo + hi) / 200 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
  regimes = sorted({_regime_of(r) for r in rows}, key=_regime_order)
  fig, axs = plt.subplots(1, len(regimes), figsize=(5.4 * len(regimes), 4.4), squeeze=False,
                          sharey=True)
  arms = sorted({_arm_of(r) for r in rows})
  for ax, label in zip(axs[0], regimes, strict=True):
    for k, name in enumerate(arms):
      _interval_points(ax, name, [
          (x + 0.012 * (k - len(arms) / 2), [r[c] for r in rows if _arm_of(r) == name
                                            and _regime_of(r) == label])
          for x, c in zip(centres, columns, strict=True)])
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_xticks(centres, [f"({lo / 100:g}, {hi / 100:g}]" for lo, hi in
                            zip(edges[:-1], edges[1:], strict=True)], fontsize=7)
    _label_axes(ax, "group pass rate", "net weight sum_k w_k", label, legend=6)
    ax.set_title(_regime_title(label), fontsize=9)
  return _save(fig, "Net weight of a mixed group by its pass rate (> 0: its responses pushed "
               f"down on net);\nrun means over training, {CONFIDENCE:.0%} t interval over seeds",
               path)


def _plot_ratio_quantiles(rows: list[dict], path: str) -> str:
  """The token ratios of wrong rollouts at the last update, by regime: one panel per quantile."""
  regimes = sorted({_regime_of(r) for r in rows}, key=_regime_order)
  names = metric_names.RATIO_NEG
  fig, axs = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.0), squeeze=False)
  arms = sorted({_arm_of(r) for r in rows})
  for ax, metric in zip(axs[0], names, strict=True):
    for k, name in enumerate(arms):
      _interval_points(ax, name, [
          (j + 0.05 * (k - len(arms) / 2), [r.get(f"{metric}_final") for r in rows
                                           if _arm_of(r) == name and _regime_of(r) == label])
          for j, label in enumerate(regimes)])
    ax.axhline(1, color="0.5", lw=0.8)
    if metric == names[-1]:  # the largest ratio spans decades; the quantiles do not
      ax.set_yscale("log")
    ax.set_xticks(range(len(regimes)), regimes, fontsize=7)
    ax.set_xlabel("regime")
    ax.set_ylabel(f"{metric}: pi / pi_old on wrong rollouts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
  return _save(fig, "Negative tokens' ratios at the last update (mean of the last 10 steps; "
               f"mean over every seed and rate, {CONFIDENCE:.0%} t interval)", path)


def per_seed_figures(rows: list[dict], out: str) -> list[str]:
  """The figures drawn from per-seed rows alone (so `--tables_only` remakes them too)."""
  figures = []
  taking_tau = [r for r in rows if "tau" in losses.hyperparameters(r["loss"])]
  if any(r.get("score_abs_p90_q90") is not None for r in taking_tau):
    figures.append(_plot_per_seed(
        taking_tau, [("score_abs_p90_q90", "o")], "|sbar| / tau (90% over rollouts, q90 over steps)",
        "How far the label weights move from their on-policy values: |sbar| / tau, every seed",
        os.path.join(out, "score_over_tau.png"), transform=lambda r, v: v / r["tau"]))
  if any(r.get("grad_cosine_final") is not None for r in rows):
    figures.append(_plot_per_seed(
        rows, [("grad_cosine_final", "o"), ("grad_cosine_q10", "v")],
        "cosine of the update with compare_loss's", "Gradient cosine with the config's "
        "compare_loss: the last 10 steps' mean, and the 10% quantile over steps",
        os.path.join(out, "grad_cosine.png")))
  if any(r.get("ratio_neg_p50_final") is not None for r in rows):
    figures.append(_plot_ratio_quantiles(rows, os.path.join(out, "ratio_neg.png")))
  if any(r.get(f"{metric_names.NET_WEIGHT[0]}_mean") is not None for r in rows):
    figures.append(_plot_net_weight(rows, os.path.join(out, "net_weight.png")))
  return figures


def _interval(r: dict, column: str, digits: int = 3) -> str:
  """`mean [lo, hi]` of a summary row's `column`, or "-" where it is undefined."""
  if r.get(f"{column}_mean") is None:
    return "-"
  return (f"{r[f'{column}_mean']:.{digits}f} [{r[f'{column}_lo']:.{digits}f}, "
          f"{r[f'{column}_hi']:.{digits}f}]")


def _high(rows, column: str) -> tuple[str, str]:
  """`(column as named in rows, how a header reads it)`."""
  named = _named(rows, column, "_mean")
  return named, ("worst" if named.endswith("_worst") or named in ("min_entropy", "max_entropy")
                 else "q90")


def _comparison(r: dict, digits: int = 3) -> tuple[str, str]:
  """The reference-minus-this cell `mean [lo, hi]` and its `p (Holm p)` cell."""
  key = "reference_minus_this_test"
  if r.get(f"{key}_mean") is None:
    return "-", "-"
  diff = (f"{r[f'{key}_mean']:+.{digits}f} [{r[f'{key}_lo']:+.{digits}f}, "
          f"{r[f'{key}_hi']:+.{digits}f}]")
  family = "" if r.get("comparison") == "primary" else ", exploratory"
  return diff, f"{r[f'{key}_p']:.3g} (Holm {r[f'{key}_p_holm']:.3g}{family})"


def format_summary(summary: list[dict]) -> str:
  """The headline columns of `summary.csv` as a Markdown table."""
  cell = _interval
  reference = next((r["reference"] for r in summary if r.get("reference")), REFERENCE)
  entropy = _named(summary, "entropy_q10", "_mean")
  columns = [_high(summary, c) for c in ("weight_neg_max_q90", "neg_dominated_fraction_q90",
                                        "kl_old_q90")]
  lines = [f"| regime | arm | lr | seeds | test pass@1 | {reference} - this (test) | p, sign-flip "
           f"| {'entropy q10' if entropy == 'entropy_q10' else 'min entropy'} "
           f"| neg. weight ({columns[0][1]}) | domination frac. ({columns[1][1]}) "
           f"| KL(old,new) ({columns[2][1]}) |",
           "|" + " --- |" * 11]
  for r in summary:
    diff, p = _comparison(r)
    lines.append(f"| {_regime_of(r)} | {_arm_of(r)} | {r['selected_lr']:g} | {r['n_seeds']} "
                 f"| {cell(r, 'test_pass_at_1')} | {diff} | {p} | {cell(r, entropy)} "
                 f"| {cell(r, columns[0][0], 2)} | {cell(r, columns[1][0], 2)} "
                 f"| {cell(r, columns[2][0], 2)} |")
  return "\n".join(lines)


def format_lengths(summary: list[dict]) -> str:
  """The length and mismatch columns of `summary.csv` as a Markdown table (tokens, EOS included)."""
  def cell(r, c, digits=1):
    return _interval(r, c, digits)
  high = {c: _high(summary, c) for c in ("length_wrong_max_q90", "truncated_fraction_q90",
                                         "mismatch_kl_q90", "corrected_fraction_q90")}
  lines = ["| regime | arm | lr | length, correct | length, wrong "
           f"| longest wrong ({high['length_wrong_max_q90'][1]}) "
           f"| truncated ({high['truncated_fraction_q90'][1]}) "
           f"| KL(mu, pi_old) ({high['mismatch_kl_q90'][1]}) "
           f"| corrected ({high['corrected_fraction_q90'][1]}) |",
           "|" + " --- |" * 9]
  for r in summary:
    lines.append(f"| {_regime_of(r)} | {_arm_of(r)} | {r['selected_lr']:g} "
                 f"| {cell(r, 'length_correct_final')} | {cell(r, 'length_wrong_final')} "
                 f"| {cell(r, high['length_wrong_max_q90'][0])} "
                 f"| {cell(r, high['truncated_fraction_q90'][0], 3)} "
                 f"| {cell(r, high['mismatch_kl_q90'][0], 5)} "
                 f"| {cell(r, high['corrected_fraction_q90'][0], 4)} |")
  return "\n".join(lines)


def _cell(text: str):
  if text == "":
    return None
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def read_summary(path: str) -> list[dict]:
  """`summary.csv` as `report` wrote it, numbers as numbers and empty cells None.

  `format_summary(read_summary(path))` is the table `report` wrote to
  `summary.md` beside it: the results pages include that file, and a test
  regenerates it from the committed CSV.
  """
  with open(path, newline="") as f:
    return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_per_seed(path: str) -> list[dict]:
  """`per_seed.csv` as `report` wrote it, numbers as numbers and empty cells None."""
  return read_summary(path)


def write_tables(rows: list[dict], out: str, comparisons: dict | None = None) -> dict:
  """Writes `summary.csv`, `summary.md` (and `lengths.md`) and `grid.csv` from per-seed rows.

  `comparisons` is what the config declared (`load_comparisons`); `report`
  calls this after training, and `python -m real_jax.study --tables_only`
  from a committed `per_seed.csv`, so that the tables can be remade without
  the runs.
  """
  comparisons = comparisons or {"reference": REFERENCE, "primary": ()}
  summary = summary_rows(rows, reference=comparisons["reference"],
                         primary=comparisons["primary"],
                         metrics=comparisons.get("metrics", COMPARED))
  _write_csv(os.path.join(out, "summary.csv"), summary)
  # The tables are made from the CSV as written, exactly as the results pages' test remakes them.
  written = read_summary(os.path.join(out, "summary.csv"))
  table = format_summary(written)
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(table + "\n")
  if any(k.startswith("length_wrong_final") for k in summary[0]):
    with open(os.path.join(out, "lengths.md"), "w") as f:
      f.write(format_lengths(written) + "\n")
  grid = grid_rows(rows)
  _write_csv(os.path.join(out, "grid.csv"), grid)
  return {"summary": summary, "grid": grid, "table": table}


def report(points: list[dict], workdir: str, out: str, cfg,
           comparisons: dict | None = None) -> dict:
  """Writes the study's tables and figures into `out`; returns their paths and the table."""
  os.makedirs(out, exist_ok=True)
  rows = per_seed_rows(points, workdir, cfg)
  if not rows:
    raise ValueError(f"no finished point under {workdir!r}: run the sweep first.")
  rows.sort(key=lambda r: tuple(r[k] for k in KEYS))
  _write_csv(os.path.join(out, "per_seed.csv"), rows)
  tables = write_tables(rows, out, comparisons)
  summary, grid, table = tables["summary"], tables["grid"], tables["table"]
  chosen = select_learning_rates(rows)
  figures = [
      _plot_grid(grid, os.path.join(out, "grid.png")),
      _plot_test_vs_updates(summary, os.path.join(out, "test_pass_vs_updates.png")),
      _plot_regime_panels(points, workdir, cfg, chosen,
                          [("entropy", "policy entropy (nats / token)")],
                          os.path.join(out, "entropy.png")),
      _plot_regime_panels(points, workdir, cfg, chosen,
                          [("weight_neg_max", "largest negative weight |w|"),
                           ("neg_top_share", "top-negative share of a group"),
                           ("neg_dominated_fraction", "share of groups dominated"),
                           ("kl_old", "KL(pi_old || pi), last update")],
                          os.path.join(out, "mechanism.png")),
      _plot_regime_panels(points, workdir, cfg, chosen,
                          [("length_correct", "mean length of correct rollouts"),
                           ("length_wrong", "mean length of wrong rollouts"),
                           ("length_wrong_max", "longest wrong rollout"),
                           ("truncated_fraction", "share truncated (no EOS)")],
                          os.path.join(out, "length.png")),
  ]
  if any(g.get("kl_old_final") is not None for g in grid):
    figures.append(_plot_frontier(grid, os.path.join(out, "frontier.png")))
  figures += per_seed_figures(rows, out)
  if any(r.get("probe_entropy") is not None for r in rows):
    figures.append(_plot_regime_panels(
        points, workdir, cfg, chosen,
        [("probe_entropy", "entropy on the probe set (nats / token)"),
         ("test_sampled_pass_at_1", "sampled pass@1"),
         ("test_sampled_pass_at_k", f"sampled pass@{cfg.get('sampled_k', 'k')}")],
        os.path.join(out, "probe_entropy.png"), intervals=True))
  mismatch = _named(rows, "mismatch_kl_q90")
  if any((r.get(mismatch) or 0) > 0 for r in rows):  # a sampler that is not the trainer's policy
    figures.append(_plot_regime_panels(
        points, workdir, cfg, chosen,
        [("mismatch_kl", "KL(mu || pi_old), sampler to trainer"),
         ("is_ratio_max", "largest token ratio pi_old / mu"),
         ("corrected_fraction", "share of tokens corrected")],
        os.path.join(out, "mismatch.png")))
  return {"per_seed": os.path.join(out, "per_seed.csv"),
          "summary": os.path.join(out, "summary.csv"), "grid": os.path.join(out, "grid.csv"),
          "table_md": os.path.join(out, "summary.md"), "figures": figures, "table": table}
