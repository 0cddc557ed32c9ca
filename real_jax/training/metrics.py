"""The metrics schema's computation, and `metrics.jsonl`.

The names and what they mean are declared in `real_jax.metric_names`. Inside
JAX an undefined metric is NaN; `records` turns NaN into None, so
`metrics.jsonl` is strict JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from real_jax import domination
from real_jax.metric_names import EVAL_METRIC
from real_jax.metric_names import EVAL_METRICS
from real_jax.metric_names import NET_WEIGHT
from real_jax.metric_names import NET_WEIGHT_BINS
from real_jax.metric_names import PERCENTILES
from real_jax.metric_names import RATIO_NEG
from real_jax.metric_names import STEP_METRICS

__all__ = [
    "TAIL",
    "RUN_SUMMARY",
    "summarise_run",
    "step_metrics",
    "records",
    "eval_steps",
    "run_records",
    "write_jsonl",
    "read_metrics",
    "series",
]

# ------------------------------------------------------ in JAX, per step ----


def _mean_where(x: jax.Array, where: jax.Array) -> jax.Array:
  """Mean of `x` over `where`; NaN (undefined) when `where` is empty."""
  n = jnp.sum(where)
  total = jnp.sum(jnp.where(where, x, 0.0))
  return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)


def step_metrics(*, rewards: jax.Array, response_mask: jax.Array, truncated: jax.Array,
                 losses: jax.Array, grad_norms: jax.Array, entropy: jax.Array,
                 last: Mapping[str, jax.Array],
                 mismatch: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
  """The `STEP_METRICS` of one step, as float32 scalars (NaN where undefined).

  Args:
    rewards: `[B, G]` the step's rewards.
    response_mask: `[B, G, R]` the step's response masks.
    truncated: `[B, G]` bool, the rollouts that ended without EOS.
    losses, grad_norms: `[U]` one per update.
    entropy: scalar, the first update's mean token entropy.
    last: the last update's `weights`, `scores`, `rewards`, `present` (each
      `[b, G]`), `clip_fraction`, `kl_old` and (optionally)
      `corrected_fraction`, `grad_cosine` and the `RATIO_NEG` quantiles (scalars).
    mismatch: `real_jax.losses.mismatch_stats` of the step's rollouts; None
      when the sampler is the trainer's policy (0 KL, ratios of 1).
  """
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  correct = rewards > 0.5
  w = jnp.abs(last["weights"])
  pos = last["present"] & (last["rewards"] > 0.5)
  neg = last["present"] & (last["rewards"] <= 0.5)
  share, counted = domination.top_share(w, neg)
  neg_top = _mean_where(share, counted)
  neg_dominated = _mean_where(domination.dominated(share).astype(share.dtype), counted)
  length = jnp.sum(response_mask, -1).astype(jnp.float32)
  net = jnp.sum(jnp.where(last["present"], last["weights"], 0.0), -1)
  mixed = pos.any(-1) & neg.any(-1)
  pass_rate = jnp.sum(pos, -1) / jnp.maximum(jnp.sum(last["present"], -1), 1)
  edges = (0.0, *(q / 100 for q in NET_WEIGHT_BINS))
  out = {
      "loss": jnp.mean(losses),
      "reward_mean": jnp.mean(rewards),
      "entropy": entropy,
      "response_length": jnp.mean(length),
      "length_correct": _mean_where(length, correct),
      "length_wrong": _mean_where(length, ~correct),
      "length_wrong_max": jnp.where((~correct).any(), jnp.max(jnp.where(correct, 0.0, length)),
                                    jnp.nan),
      "truncated_fraction": jnp.mean(truncated.astype(jnp.float32)),
      "grad_norm": jnp.mean(grad_norms),
      "mixed_group_fraction": jnp.mean((correct.any(-1) & ~correct.all(-1)).astype(jnp.float32)),
      "solve_all_fraction": jnp.mean(correct.all(-1).astype(jnp.float32)),
      "score_pos_mean": _mean_where(last["scores"], pos),
      "score_neg_mean": _mean_where(last["scores"], neg),
      **dict(zip(("score_abs_p50", "score_abs_p90"), jnp.nanpercentile(
          jnp.where(last["present"], jnp.abs(last["scores"]), jnp.nan).reshape(-1),
          jnp.asarray([50, 90], jnp.float32)), strict=True)),
      "score_abs_max": jnp.where(last["present"].any(), jnp.max(jnp.where(
          last["present"], jnp.abs(last["scores"]), -jnp.inf)), jnp.nan),
      "grad_cosine": last.get("grad_cosine", jnp.full((), jnp.nan)),
      "grad_norm_max": jnp.max(grad_norms),
      **{k: last.get(k, jnp.full((), jnp.nan)) for k in RATIO_NEG},
      "weight_pos_mean": _mean_where(w, pos),
      "weight_neg_mean": _mean_where(w, neg),
      "weight_neg_max": jnp.where(neg.any(), jnp.max(jnp.where(neg, w, -jnp.inf)), jnp.nan),
      "neg_top_share": neg_top,
      "neg_dominated_fraction": neg_dominated,
      **{name: _mean_where(net, mixed & (pass_rate > lo) & (pass_rate <= hi))
         for name, lo, hi in zip(NET_WEIGHT, edges[:-1], edges[1:], strict=True)},
      "clip_fraction": last["clip_fraction"],
      "kl_old": last["kl_old"],
      "corrected_fraction": last.get("corrected_fraction", jnp.zeros(())),
      **(mismatch or {"mismatch_kl": 0.0, "is_ratio_min": 1.0, "is_ratio_max": 1.0,
                      "seq_log_ratio_max": 0.0}),
  }
  for sign, members in (("pos", pos), ("neg", neg)):
    spread = jnp.nanpercentile(jnp.where(members, w, jnp.nan).reshape(-1),
                               jnp.asarray(PERCENTILES, w.dtype))
    for q, value in zip(PERCENTILES, spread, strict=True):
      out[f"weight_{sign}_p{q}"] = value
  return {k: f32(out[k]) for k in STEP_METRICS}


# ------------------------------------------------- records and the file ----


def _value(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None


def records(step_values: Mapping[str, Any], first_step: int,
            evals: Mapping[int, Mapping[str, float]] | None = None) -> list[dict]:
  """One record per step: steps `first_step .. first_step + n - 1`.

  Args:
    step_values: `STEP_METRICS` name -> `[n]` values (NumPy or JAX), or None
      for a record with no training step (step 0, the base model).
    first_step: the step of the first value.
    evals: step -> `{EVAL_METRICS name: value}`, for the steps that were evaluated.
  """
  evals = evals or {}
  n = 1 if step_values is None else len(np.asarray(step_values[STEP_METRICS[0]]))
  host = None if step_values is None else {k: np.asarray(step_values[k]) for k in STEP_METRICS}
  out = []
  for i in range(n):
    step = first_step + i
    rec: dict = {"step": step}
    for k in STEP_METRICS:
      rec[k] = None if host is None else _value(host[k][i])
    for k in EVAL_METRICS:
      rec[k] = _value(evals[step][k]) if step in evals and k in evals[step] else None
    out.append(rec)
  return out


def eval_steps(steps: int, eval_every: int) -> tuple[int, ...]:
  """The steps at which held-out pass@1 is measured: 0, every `eval_every`, and the last."""
  if eval_every < 1:
    raise ValueError(f"`eval_every` must be >= 1, got {eval_every}.")
  marks = list(range(0, steps + 1, eval_every))
  if marks[-1] != steps:
    marks.append(steps)
  return tuple(marks)


def run_records(run: Mapping[str, Any], steps: int, eval_every: int) -> list[dict]:
  """A scanned run's metrics (`STEP_METRICS` `[steps]`, `EVAL_METRICS` `[n_evals]`) as records."""
  marks = eval_steps(steps, eval_every)
  evals = {t: {k: np.asarray(run[k])[i] for k in EVAL_METRICS if k in run}
           for i, t in enumerate(marks)}
  return records(None, 0, evals) + records(run, 1, evals)


def write_jsonl(path: str, recs: Iterable[dict], mode: str = "a") -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, mode) as f:
    for rec in recs:
      f.write(json.dumps(rec, allow_nan=False) + "\n")


def read_metrics(workdir: str) -> list[dict]:
  """The records of `workdir/metrics.jsonl`."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def series(recs: Iterable[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
  """`(steps, values)` of `metric` over the records where it is defined."""
  pts = [(r["step"], r[metric]) for r in recs if r.get(metric) is not None]
  if not pts:
    return np.zeros(0, int), np.zeros(0)
  steps, values = zip(*pts, strict=True)
  return np.asarray(steps), np.asarray(values, float)


# ------------------------------------------ one run's summary numbers ----

# `final_*` numbers average the last TAIL steps: single steps are noisy batches.
TAIL = 10
# How a run's summary numbers are read from its records: (column, metric, how),
# `how` one of "first", "last" (evaluations), "tail" (mean of the last TAIL
# steps), "mean" (over every step where it is defined), "min", "max", or
# "q10" / "q90", the 10% / 90% quantile over steps: a run's high or low
# values without the single noisiest batch deciding them.
# The sweep's `summary.csv` and `DONE` markers use these.
RUN_SUMMARY: tuple[tuple[str, str, str], ...] = (
    ("base_pass_at_1", EVAL_METRIC, "first"),
    ("final_pass_at_1", EVAL_METRIC, "last"),
    ("best_pass_at_1", EVAL_METRIC, "max"),
    ("final_reward", "reward_mean", "tail"),
    ("final_entropy", "entropy", "tail"),
    ("min_entropy", "entropy", "min"),
    ("final_length", "response_length", "tail"),
    ("max_weight_neg", "weight_neg_max", "max"),
    ("max_kl_old", "kl_old", "max"),
)
_TAKE = {"first": lambda v: v[0], "last": lambda v: v[-1], "tail": lambda v: v[-TAIL:].mean(),
         "mean": np.mean,
         "min": np.min, "max": np.max, "q10": lambda v: np.quantile(v, 0.1),
         "q90": lambda v: np.quantile(v, 0.9)}


def summarise_run(recs: Iterable[dict], spec=RUN_SUMMARY) -> dict[str, float | None]:
  """One run's summary numbers, `{column: value}` for each `(column, metric, how)` of `spec`.

  A number whose metric is never defined in `recs` is None.

  >>> recs = [{"step": t, "entropy": 1.0 - t / 20} for t in range(20)]
  >>> summarise_run(recs, [("final_entropy", "entropy", "tail"), ("min_entropy", "entropy", "min")])
  {'final_entropy': 0.275, 'min_entropy': 0.05}
  """
  recs = list(recs)
  out = {}
  for column, metric, how in spec:
    if how not in _TAKE:
      raise ValueError(f"`spec`: {column!r} is taken {how!r}; expected one of {sorted(_TAKE)}.")
    values = series(recs, metric)[1]
    out[column] = float(_TAKE[how](values)) if len(values) else None
  return out
