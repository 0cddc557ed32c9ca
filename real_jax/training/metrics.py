"""The one metrics schema: names, the per-step computation, and `metrics.jsonl`.

Every driver (the scanned run, the resumable loop, the sweep) writes records
with exactly the keys of `METRICS`, one record per step, step 0 being the
base model. A metric that is undefined at a step (held-out pass@1 between
evaluations, a negatives-only statistic in a step with no wrong rollout, any
training metric at step 0) is written as `null`; inside JAX it is NaN, and
`records` turns NaN into None, so `metrics.jsonl` is strict JSON.

What the names mean (B groups of G rollouts per step; the "last update" is
the step's final minibatch update, the most off-policy one):

- `loss`, `grad_norm`: means over the step's updates.
- `reward_mean`: mean reward of the step's B x G rollouts.
- `eval_pass_at_1`: held-out pass@1 (greedy by default) after the step, on the
  config's `eval_split` (the whole held-out split, or its validation half).
- `test_pass_at_1`: the same on the test half, where the config asks for it
  (`test_size > 0`); null otherwise.
- `entropy`: mean token entropy of the policy on the step's first minibatch,
  before any update (the sampling policy, at the sampling temperature).
- `response_length`: mean response length in tokens, EOS included.
- `mixed_group_fraction`, `solve_all_fraction`: share of groups with both
  labels, and with every rollout correct.
- `score_pos_mean`, `score_neg_mean`: mean sequence score `sbar` of correct
  and of wrong rollouts at the last update: how far off-policy it is.
- `weight_{pos,neg}_mean`, `weight_neg_max`, `weight_{pos,neg}_p{10,50,90}`:
  the per-rollout gradient weight `|w_k|`, `w_k = n_groups * sum_t dL/ds_{k,t}`
  at the last update (for the label-based losses this is `|dL_g/dsbar_k|`,
  the weight inside the rollout's own group).
- `neg_top_share`: over groups with at least two wrong rollouts, the mean
  share of the group's negative weight carried by its largest negative.
- `neg_dominated_fraction`: over the same groups, the fraction in which that
  largest negative carries more than half of the negative weight (a
  "domination event": one wrong rollout outweighs all the others together).
- `clip_fraction`: share of the last update's response tokens whose clip is
  active (0 for the label-based losses, which have no clip).
- `kl_old`: token-mean `k3` estimate of KL(pi_old || pi) at the last update,
  `mean(e^s - 1 - s)` with `s = log pi - log pi_old` on tokens sampled from
  pi_old: 0 on-policy, growing as the updates move the policy.
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

__all__ = [
    "STEP_METRICS",
    "EVAL_METRIC",
    "TEST_METRIC",
    "EVAL_METRICS",
    "METRICS",
    "PERCENTILES",
    "name",
    "top_share",
    "step_metrics",
    "records",
    "eval_steps",
    "run_records",
    "write_jsonl",
    "read_metrics",
    "series",
]

PERCENTILES = (10, 50, 90)

# Computed by `step_metrics`, one value per training step.
STEP_METRICS: tuple[str, ...] = (
    "loss", "reward_mean", "entropy", "response_length", "grad_norm",
    "mixed_group_fraction", "solve_all_fraction",
    "score_pos_mean", "score_neg_mean",
    "weight_pos_mean", "weight_neg_mean", "weight_neg_max", "neg_top_share",
    "neg_dominated_fraction",
    *(f"weight_{sign}_p{q}" for sign in ("pos", "neg") for q in PERCENTILES),
    "clip_fraction", "kl_old",
)
EVAL_METRIC = "eval_pass_at_1"
TEST_METRIC = "test_pass_at_1"
# Measured at evaluation steps only (`eval_steps`).
EVAL_METRICS: tuple[str, ...] = (EVAL_METRIC, TEST_METRIC)
# The keys of every `metrics.jsonl` record, in order.
METRICS: tuple[str, ...] = ("step", *STEP_METRICS, *EVAL_METRICS)


def name(metric: str) -> str:
  """Returns `metric`, after checking it is in the schema (for code that names metrics)."""
  if metric not in METRICS:
    raise ValueError(f"{metric!r} is not a metric of the schema; known: {', '.join(METRICS)}.")
  return metric


# ------------------------------------------------------ in JAX, per step ----


def _mean_where(x: jax.Array, where: jax.Array) -> jax.Array:
  """Mean of `x` over `where`; NaN (undefined) when `where` is empty."""
  n = jnp.sum(where)
  total = jnp.sum(jnp.where(where, x, 0.0))
  return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)


def top_share(mass: jax.Array, members: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Over groups with >= 2 members (`[B, G]` inputs), the share `max(mass) / sum(mass)`.

  Returns its mean over those groups and the fraction of them where it exceeds 1/2.
  """
  mass = jnp.where(members, mass, 0.0)
  total = jnp.sum(mass, axis=-1)
  counted = (jnp.sum(members, axis=-1) >= 2) & (total > 0)
  share = jnp.max(mass, axis=-1) / jnp.where(counted, total, 1.0)
  return _mean_where(share, counted), _mean_where((share > 0.5).astype(share.dtype), counted)


def step_metrics(*, rewards: jax.Array, response_mask: jax.Array, losses: jax.Array,
                 grad_norms: jax.Array, entropy: jax.Array, last: Mapping[str, jax.Array]
                 ) -> dict[str, jax.Array]:
  """The `STEP_METRICS` of one step, as float32 scalars (NaN where undefined).

  Args:
    rewards: `[B, G]` the step's rewards.
    response_mask: `[B, G, R]` the step's response masks.
    losses, grad_norms: `[U]` one per update.
    entropy: scalar, the first update's mean token entropy.
    last: the last update's `weights`, `scores`, `rewards`, `present` (each
      `[b, G]`), `clip_fraction` and `kl_old` (scalars).
  """
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  correct = rewards > 0.5
  w = jnp.abs(last["weights"])
  pos = last["present"] & (last["rewards"] > 0.5)
  neg = last["present"] & (last["rewards"] <= 0.5)
  neg_top, neg_dominated = top_share(w, neg)
  out = {
      "loss": jnp.mean(losses),
      "reward_mean": jnp.mean(rewards),
      "entropy": entropy,
      "response_length": jnp.mean(jnp.sum(response_mask, -1).astype(jnp.float32)),
      "grad_norm": jnp.mean(grad_norms),
      "mixed_group_fraction": jnp.mean((correct.any(-1) & ~correct.all(-1)).astype(jnp.float32)),
      "solve_all_fraction": jnp.mean(correct.all(-1).astype(jnp.float32)),
      "score_pos_mean": _mean_where(last["scores"], pos),
      "score_neg_mean": _mean_where(last["scores"], neg),
      "weight_pos_mean": _mean_where(w, pos),
      "weight_neg_mean": _mean_where(w, neg),
      "weight_neg_max": jnp.where(neg.any(), jnp.max(jnp.where(neg, w, -jnp.inf)), jnp.nan),
      "neg_top_share": neg_top,
      "neg_dominated_fraction": neg_dominated,
      "clip_fraction": last["clip_fraction"],
      "kl_old": last["kl_old"],
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
