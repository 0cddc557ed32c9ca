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

import matplotlib.pyplot as plt
import numpy as np

from real_jax import metric_names
from real_jax import palette
from real_jax.reporting import sweep as report_sweep
from real_jax.training import metrics as metrics_lib
from real_jax.training import sweep as sweep_lib

__all__ = [
    "CONFIDENCE",
    "BOOTSTRAP_SAMPLES",
    "COLUMNS",
    "GRID_COLUMNS",
    "updates_per_step",
    "regime",
    "PER_SEED",
    "per_seed_rows",
    "bootstrap_interval",
    "select_learning_rates",
    "summary_rows",
    "grid_rows",
    "format_summary",
    "format_lengths",
    "read_summary",
    "report",
]

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 10_000
REFERENCE = "real"
MECHANISM = ("score_pos_mean", "score_neg_mean", "weight_neg_max", "neg_top_share",
             "neg_dominated_fraction", "clip_fraction", "kl_old")
LENGTH = ("length_correct", "length_wrong", "length_wrong_max", "truncated_fraction")
MISMATCH = ("mismatch_kl", "corrected_fraction")
# How each per-seed column is read from a run's records (`metrics.summarise_run`):
# evaluations at their last value, the rest as the mean of the last TAIL steps
# ("_final") and at their worst over training ("_worst": the minimum for
# `score_pos_mean`, the maximum otherwise).
PER_SEED = (
    ("val_pass_at_1", metric_names.EVAL_METRIC, "last"),
    ("test_pass_at_1", metric_names.TEST_METRIC, "last"),
    ("final_reward", "reward_mean", "tail"),
    ("final_entropy", "entropy", "tail"),
    ("min_entropy", "entropy", "min"),
    ("max_entropy", "entropy", "max"),
    *((f"{m}_{when}", m, how) for m in MECHANISM
      for when, how in (("final", "tail"), ("worst", "min" if m == "score_pos_mean" else "max"))),
    # Lengths and the mismatch at the end and at their largest.
    *((f"{m}_{when}", m, how) for m in LENGTH + MISMATCH
      for when, how in (("final", "tail"), ("worst", "max"))),
)
COLUMNS = tuple(column for column, _, _ in PER_SEED)
KEYS = ("loss", "updates_per_step", "regime", "ppo_epochs", "minibatches", "lr", "seed")


def updates_per_step(point: dict, cfg) -> int:
  return int(point.get("ppo_epochs", cfg.ppo_epochs)) * int(point.get("minibatches",
                                                                       cfg.minibatches))


def regime(point: dict, cfg) -> str:
  """The point's regime label: its updates per step, then its sampler and correction if any.

  >>> import ml_collections
  >>> cfg = ml_collections.ConfigDict({"ppo_epochs": 1, "minibatches": 1,
  ...                                  "sampler_dtype": "float32", "correction": "none"})
  >>> regime({"ppo_epochs": 4, "minibatches": 4}, cfg), regime(
  ...     {"sampler_dtype": "bfloat16", "correction": "tis_seq"}, cfg)
  ('16', '1 bf16 tis_seq')
  """
  label = str(updates_per_step(point, cfg))
  sampler = point.get("sampler_dtype", cfg.get("sampler_dtype", "float32"))
  correction = point.get("correction", cfg.get("correction", "none"))
  if sampler != "float32":
    label += " " + {"bfloat16": "bf16"}.get(sampler, sampler)
  if correction != "none":
    label += " " + correction
  return label


def _regime_order(label) -> tuple:
  """Regimes in order: by updates per step, then plain before mismatched."""
  updates, _, rest = str(label).partition(" ")
  return (int(updates), rest)


def _regime_title(label) -> str:
  updates, _, rest = str(label).partition(" ")
  return f"{updates} update(s) per step" + (f", {rest}" if rest else "")


def per_seed_rows(points: list[dict], workdir: str, cfg) -> list[dict]:
  rows = []
  for p in points:
    if not os.path.exists(sweep_lib.done_marker(workdir, p)):
      continue
    folder = os.path.join(workdir, sweep_lib.point_name(p))
    rows.append({"loss": p.get("loss", cfg.loss), "updates_per_step": updates_per_step(p, cfg),
                 "regime": regime(p, cfg), "ppo_epochs": p.get("ppo_epochs", cfg.ppo_epochs),
                 "minibatches": p.get("minibatches", cfg.minibatches),
                 "lr": float(p.get("lr", cfg.lr)), "seed": int(p.get("seed", cfg.seed)),
                 **metrics_lib.summarise_run(metrics_lib.read_metrics(folder), PER_SEED)})
  return rows


def bootstrap_interval(values, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
                       ) -> tuple[float, float]:
  """The percentile bootstrap `CONFIDENCE` interval of the mean of `values`."""
  v = np.asarray([x for x in values if x is not None], float)
  if len(v) == 0:
    return (float("nan"), float("nan"))
  rng = np.random.default_rng(seed)
  means = v[rng.integers(0, len(v), size=(samples, len(v)))].mean(axis=1)
  alpha = (1 - CONFIDENCE) / 2
  return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _regime_of(row: dict) -> str:
  """A row's regime label (rows written before regimes had labels: their updates per step)."""
  return str(row.get("regime", row["updates_per_step"]))


def select_learning_rates(rows: list[dict]) -> dict[tuple[str, str], float]:
  """`(loss, regime) -> lr` with the best mean validation pass@1 (ties: smaller lr)."""
  scores: dict = {}
  for r in rows:
    if r["val_pass_at_1"] is not None:
      scores.setdefault((r["loss"], _regime_of(r)), {}).setdefault(r["lr"], []).append(
          r["val_pass_at_1"])
  return {key: min(by_lr, key=lambda lr: (-np.mean(by_lr[lr]), lr))
          for key, by_lr in scores.items()}


def summary_rows(rows: list[dict]) -> list[dict]:
  chosen = select_learning_rates(rows)
  at = {key: {r["seed"]: r for r in rows
              if (r["loss"], _regime_of(r)) == key and r["lr"] == lr}
        for key, lr in chosen.items()}
  out = []
  for (loss, label), by_seed in sorted(at.items(),
                                       key=lambda kv: (_regime_order(kv[0][1]), kv[0][0])):
    first = next(iter(by_seed.values()))
    row = {"loss": loss, "updates_per_step": first["updates_per_step"], "regime": label,
           "selected_lr": chosen[(loss, label)], "n_seeds": len(by_seed)}
    for c in COLUMNS:
      values = [r[c] for r in by_seed.values() if r[c] is not None]
      row[f"{c}_mean"] = float(np.mean(values)) if values else None
      row[f"{c}_lo"], row[f"{c}_hi"] = bootstrap_interval(values) if values else (None, None)
    reference = at.get((REFERENCE, label), {})
    seeds = sorted(set(reference) & set(by_seed))
    if loss != REFERENCE and seeds:
      diff = [reference[s]["test_pass_at_1"] - by_seed[s]["test_pass_at_1"] for s in seeds]
      row[f"{REFERENCE}_minus_this_test_mean"] = float(np.mean(diff))
      lo, hi = bootstrap_interval(diff)
      row[f"{REFERENCE}_minus_this_test_lo"], row[f"{REFERENCE}_minus_this_test_hi"] = lo, hi
    out.append(row)
  return out


GRID_COLUMNS = ("val_pass_at_1", "min_entropy", "max_entropy", "weight_neg_max_worst",
                "neg_dominated_fraction_worst", "kl_old_worst")


def grid_rows(rows: list[dict]) -> list[dict]:
  """Means over seeds of `GRID_COLUMNS` for every (loss, regime, lr); no test numbers."""
  cells: dict = {}
  for r in rows:
    cells.setdefault((_regime_of(r), r["loss"], r["lr"]), []).append(r)
  out = []
  for (label, loss, lr), members in sorted(cells.items(),
                                           key=lambda kv: (_regime_order(kv[0][0]), kv[0][1:])):
    row = {"loss": loss, "updates_per_step": members[0]["updates_per_step"], "regime": label,
           "lr": lr, "n_seeds": len(members)}
    for c in GRID_COLUMNS:
      v = [m[c] for m in members if m[c] is not None]
      row[c] = float(np.mean(v)) if v else None
    out.append(row)
  return out


def _plot_grid(grid: list[dict], path: str) -> str:
  regimes = sorted({_regime_of(g) for g in grid}, key=_regime_order)
  fig, axs = plt.subplots(2, len(regimes), figsize=(5 * len(regimes), 7), squeeze=False,
                          sharey="row")
  for j, label in enumerate(regimes):
    for i, (col, what) in enumerate((("val_pass_at_1", "final validation pass@1"),
                                     ("min_entropy", "minimum entropy over training"))):
      ax = axs[i, j]
      for loss in sorted({g["loss"] for g in grid}):
        pts = sorted((g["lr"], g[col]) for g in grid
                     if g["loss"] == loss and _regime_of(g) == label
                     and g[col] is not None)
        if pts:
          ax.plot(*zip(*pts, strict=True), marker="o", label=loss, color=palette.color(loss))
      ax.set_xscale("log")
      ax.set_xlabel("learning rate")
      ax.set_ylabel(what)
      ax.set_title(_regime_title(label))
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7)
  fig.suptitle("The selection landscape: means over seeds, validation data only")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _write_csv(path: str, rows: list[dict]) -> None:
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def _curves(points, workdir, cfg, chosen, metric):
  """`regime -> loss -> (steps, [seeds, steps])` of `metric` at each selected lr."""
  out: dict = {}
  for p in points:
    label = regime(p, cfg)
    loss = p.get("loss", cfg.loss)
    if chosen.get((loss, label)) != float(p.get("lr", cfg.lr)):
      continue
    if not os.path.exists(sweep_lib.done_marker(workdir, p)):
      continue
    folder = os.path.join(workdir, sweep_lib.point_name(p))
    steps, values = metrics_lib.series(metrics_lib.read_metrics(folder), metric)
    out.setdefault(label, {}).setdefault(loss, []).append((steps, values))
  return out


def _plot_regime_panels(points, workdir, cfg, chosen, metrics, path, window=5):
  regimes = sorted({regime(p, cfg) for p in points}, key=_regime_order)
  fig, axs = plt.subplots(len(metrics), len(regimes), figsize=(5 * len(regimes),
                                                               3.6 * len(metrics)),
                          squeeze=False, sharey="row")
  for i, (metric, label) in enumerate(metrics):
    curves = _curves(points, workdir, cfg, chosen, metric)
    for j, label_j in enumerate(regimes):
      ax = axs[i, j]
      for loss, runs in sorted(curves.get(label_j, {}).items()):
        report_sweep.plot_mean_band(ax, runs, f"{loss} (lr {chosen[(loss, label_j)]:g})",
                                    window=window, alpha=0.12, color=palette.color(loss))
      ax.set_title(_regime_title(label_j))
      ax.set_xlabel("RL step")
      ax.set_ylabel(label)
      ax.grid(alpha=0.3)
      if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
      else:  # e.g. a metric logged only now and then, in a run shorter than that
        ax.text(0.5, 0.5, "no value logged", ha="center", va="center",
                transform=ax.transAxes, color="0.5")
  fig.suptitle(f"Mean over seeds at each loss's validation-selected lr (band: min..max; "
               f"smoothed over {window} steps)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _plot_test_vs_updates(summary: list[dict], path: str) -> str:
  regimes = sorted({_regime_of(r) for r in summary}, key=_regime_order)
  fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(regimes)), 4.5))
  losses = sorted({r["loss"] for r in summary})
  for k, loss in enumerate(losses):
    rs = sorted((r for r in summary if r["loss"] == loss),
                key=lambda r: _regime_order(_regime_of(r)))
    x = np.asarray([regimes.index(_regime_of(r)) for r in rs], float) + 0.06 * (
        k - len(losses) / 2)
    mean = np.asarray([r["test_pass_at_1_mean"] for r in rs])
    lo = np.asarray([r["test_pass_at_1_lo"] for r in rs])
    hi = np.asarray([r["test_pass_at_1_hi"] for r in rs])
    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=loss,
                color=palette.color(loss))
  ax.set_xticks(range(len(regimes)), regimes)
  ax.set_xlabel("regime: updates per step (and the sampler, the correction)")
  ax.set_ylabel("final test pass@1")
  ax.set_title(f"Test pass@1 at the validation-selected lr; bars: {CONFIDENCE:.0%} bootstrap "
               "interval over seeds", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _interval(r: dict, column: str, digits: int = 3) -> str:
  """`mean [lo, hi]` of a summary row's `column`, or "-" where it is undefined."""
  if r.get(f"{column}_mean") is None:
    return "-"
  return (f"{r[f'{column}_mean']:.{digits}f} [{r[f'{column}_lo']:.{digits}f}, "
          f"{r[f'{column}_hi']:.{digits}f}]")


def format_summary(summary: list[dict]) -> str:
  """The headline columns of `summary.csv` as a Markdown table."""
  cell = _interval
  lines = ["| regime | loss | lr | test pass@1 | REAL - this (test) | min entropy "
           "| worst neg. weight | worst domination frac. | worst KL(old,new) |",
           "|" + " --- |" * 9]
  for r in summary:
    diff = (f"{r[f'{REFERENCE}_minus_this_test_mean']:+.3f} "
            f"[{r[f'{REFERENCE}_minus_this_test_lo']:+.3f}, "
            f"{r[f'{REFERENCE}_minus_this_test_hi']:+.3f}]"
            if r.get(f"{REFERENCE}_minus_this_test_mean") is not None else "-")
    lines.append(f"| {_regime_of(r)} | {r['loss']} | {r['selected_lr']:g} "
                 f"| {cell(r, 'test_pass_at_1')} | {diff} | {cell(r, 'min_entropy')} "
                 f"| {cell(r, 'weight_neg_max_worst', 2)} "
                 f"| {cell(r, 'neg_dominated_fraction_worst', 2)} | {cell(r, 'kl_old_worst', 2)} |")
  return "\n".join(lines)


def format_lengths(summary: list[dict]) -> str:
  """The length and mismatch columns of `summary.csv` as a Markdown table (tokens, EOS included)."""
  def cell(r, c, digits=1):
    return _interval(r, c, digits)
  lines = ["| regime | loss | lr | length, correct | length, wrong | longest wrong "
           "| truncated (worst) | KL(mu, pi_old) (worst) | corrected (worst) |",
           "|" + " --- |" * 9]
  for r in summary:
    lines.append(f"| {_regime_of(r)} | {r['loss']} | {r['selected_lr']:g} "
                 f"| {cell(r, 'length_correct_final')} | {cell(r, 'length_wrong_final')} "
                 f"| {cell(r, 'length_wrong_max_worst')} | {cell(r, 'truncated_fraction_worst', 3)} "
                 f"| {cell(r, 'mismatch_kl_worst', 5)} | {cell(r, 'corrected_fraction_worst', 4)} |")
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


def report(points: list[dict], workdir: str, out: str, cfg) -> dict:
  """Writes the study's tables and figures into `out`; returns their paths and the table."""
  os.makedirs(out, exist_ok=True)
  rows = per_seed_rows(points, workdir, cfg)
  if not rows:
    raise ValueError(f"no finished point under {workdir!r}: run the sweep first.")
  rows.sort(key=lambda r: tuple(r[k] for k in KEYS))
  _write_csv(os.path.join(out, "per_seed.csv"), rows)
  summary = summary_rows(rows)
  _write_csv(os.path.join(out, "summary.csv"), summary)
  # The tables are made from the CSV as written, exactly as the results pages' test remakes them.
  written = read_summary(os.path.join(out, "summary.csv"))
  table = format_summary(written)
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(table + "\n")
  if "length_wrong_final_mean" in summary[0]:
    with open(os.path.join(out, "lengths.md"), "w") as f:
      f.write(format_lengths(written) + "\n")
  chosen = select_learning_rates(rows)
  grid = grid_rows(rows)
  _write_csv(os.path.join(out, "grid.csv"), grid)
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
  if any(" " in _regime_of(r) for r in rows):  # a regime whose sampler is not the trainer
    figures.append(_plot_regime_panels(
        points, workdir, cfg, chosen,
        [("mismatch_kl", "KL(mu || pi_old), sampler to trainer"),
         ("is_ratio_max", "largest token ratio pi_old / mu"),
         ("corrected_fraction", "share of tokens corrected")],
        os.path.join(out, "mismatch.png")))
  return {"per_seed": os.path.join(out, "per_seed.csv"),
          "summary": os.path.join(out, "summary.csv"), "grid": os.path.join(out, "grid.csv"),
          "table_md": os.path.join(out, "summary.md"), "figures": figures, "table": table}
