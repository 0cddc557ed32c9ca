"""Check your own objective: its autodiff gradient against the closed form you derived.

A researcher writes two functions for the same `[B, G, T]` batch as
`real_jax.losses`:

- `loss(logp, old_logp, mask, rewards)`: the batched loss, a scalar (or a
  `(scalar, aux)` pair);
- `weights(logp, old_logp, mask, rewards)`: the closed form of
  `d loss / d logp` per token, `[B, G, T]`, written without autodiff.

Register them once (`real_jax.losses.register("tapered", topr, weights=topr_weights)`)
and the same objective is checked here by name (`check_objective("tapered")`),
trained by both drivers, swept and run through the Tunix adapter.

`check_objective` runs them through the randomized sweep of the shipped
objectives (the same random groups: ragged, padded with NaN, one-sided,
scores up to ±20; the same relative-error measure and tolerances), and
through the Figure 1 probe (one rollout's log-ratio moving in an on-policy
group of 8 split 4/4); `plot_objective` draws that probe in Figure 1's layout.

Example, for TOPR-style tapered REINFORCE (not shipped by real_jax: plain
`-A log pi` for positives, a truncated importance weight `min(rho, 1)` for
negatives), with GRPO advantages and `token-mean`:

>>> import jax, jax.numpy as jnp
>>> from real_jax import losses, grad_analysis as ga
>>> def advantages(mask, rewards):
...   present = jnp.any(mask, -1)
...   return jax.vmap(losses.group_advantages)(rewards, present)[..., None]
>>> def topr(logp, old_logp, mask, rewards):
...   a = advantages(mask, rewards)
...   w = jnp.where(a > 0, 1.0, jnp.minimum(jnp.exp(logp - old_logp), 1.0))
...   tok = -jax.lax.stop_gradient(w) * a * jnp.where(mask, logp, 0.0)
...   return jnp.sum(jnp.where(mask, tok, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
>>> def topr_weights(logp, old_logp, mask, rewards):
...   a = advantages(mask, rewards)
...   w = jnp.where(a > 0, 1.0, jnp.minimum(jnp.exp(logp - old_logp), 1.0))
...   return jnp.where(mask, -w * a, 0.0) / jnp.maximum(jnp.sum(mask), 1)
>>> report = ga.check_objective(ga.Objective("topr", topr, topr_weights),
...                             cases=256, dtypes=("float32",), progress=None)
>>> report.passed
True
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from real_jax import losses
from real_jax.grad_analysis import _cases
from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis import _figures
from real_jax.grad_analysis import _properties
from real_jax.grad_analysis import _report
from real_jax.grad_analysis import _stats
from real_jax.grad_analysis import _sweep

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Objective:
  """An objective to check.

  Attributes:
    name: how the report and the figure call it.
    loss: `loss(logp, old_logp, mask, rewards) -> scalar or (scalar, aux)`,
      with `logp, old_logp, mask: [B, G, T]` and `rewards: [B, G]` (0/1).
      Masked positions of `logp` hold NaN in the sweep, as a trainer's
      padding may: read them through `jnp.where`.
    weights: `weights(logp, old_logp, mask, rewards) -> [B, G, T]`, the
      closed form of `d loss / d logp`, written without `jax.grad`; or
      `(weights, terms)` for a closed form that sums terms of both signs, with
      `terms` `[B, G, T]` their magnitudes summed: near the sum's zero the
      relative error is then taken against the terms, whose rounding it
      inherits (as for the shipped DRO).
    edges: importance ratios at which the weight jumps (clip edges); tokens
      within a relative 1e-5 (float32) or 1e-12 (float64) of one are left out,
      since the derivative is undefined there.
  """
  name: str
  loss: Callable
  weights: Callable
  edges: tuple[float, ...] = ()


@dataclasses.dataclass
class ObjectiveReport:
  """What `check_objective` measured.

  Attributes:
    name: the objective's name.
    table: `table[sign][dtype]` with `cases` (tokens compared), `max_abs_err`,
      `max_rel_err`, `tolerance`, `passed`, `zero_fraction` (share of the
      tokens whose autodiff gradient is exactly 0), `max_weight` and
      `edge_excluded`. Positive tokens belong to rollouts with reward 1.
    curves: `curves[sign] = (s, autodiff |W|, closed-form |W|)`: the Figure 1
      probe, `|d loss / d s|` of the probe token times the 4 groups of its
      batch, in the last dtype.
    passed: every relative error within its tolerance.
    seconds: wall time.
  """
  name: str
  table: dict
  curves: dict
  passed: bool
  seconds: float


def _scalar(out):
  return out[0] if isinstance(out, tuple) else out


def _compare(objective: Objective, logp, old_logp, mask, rewards) -> dict:
  def one(lp, olp, m, r):
    auto = jax.grad(lambda x: _scalar(objective.loss(x, olp, m, r)))(lp)
    return auto, objective.weights(lp, olp, m, r)
  auto, closed = jax.vmap(one)(logp, old_logp, mask, rewards)
  closed, terms = closed if isinstance(closed, tuple) else (closed, None)
  if tuple(closed.shape) != tuple(auto.shape) or (
      terms is not None and tuple(terms.shape) != tuple(auto.shape)):
    raise ValueError(f"`{objective.name}.weights` must return the shape of `logp` "
                     f"{tuple(auto.shape[1:])}, got {tuple(closed.shape[1:])}.")
  ratio = jnp.exp(jnp.where(mask, logp - old_logp, 0.0))
  edge = cf.near_edges(ratio, objective.edges, logp.dtype)
  positive = (rewards > 0.5)[..., None] & mask
  out = {}
  for sign, side in (("positive", positive), ("negative", mask & ~positive)):
    members = side & ~edge
    stats = _stats._error_stats(auto, closed, members, terms)
    stats["zero"] = jnp.sum(members & (auto == 0))
    stats["max_weight"] = jnp.max(jnp.where(members, jnp.abs(auto), 0.0))
    stats["edge_excluded"] = jnp.sum(edge & side)
    out[sign] = stats
  scale = _cases.GROUPS_PER_CASE
  out["probe_auto"] = jnp.abs(auto[:, :, 0, 0]) * scale
  out["probe_closed"] = jnp.abs(closed[:, :, 0, 0]) * scale
  return out


_compare_jit = jax.jit(_compare, static_argnums=0)


def as_objective(name: str, **hyperparameters) -> Objective:
  """The `Objective` of a loss registered with its closed form (`real_jax.losses.register`
  with `weights=`), at `hyperparameters` (its defaults otherwise)."""
  spec = losses.spec(name)
  if spec.weights is None:
    raise ValueError(f"loss {name!r} has no closed form to check: register it with "
                     "`weights=` (its d loss / d logp), or pass an Objective.")
  losses.check_hyperparameters(name, hyperparameters, what="`check_objective`")
  bind = lambda f: functools.partial(f, **hyperparameters) if hyperparameters else f  # noqa: E731
  return Objective(name, bind(spec.fn), bind(spec.weights), spec.edges)


def check_objective(objective: Objective | str, *, cases: int = 20_000,
                    dtypes: tuple[str, ...] = ("float32", "float64"), seed: int = 0,
                    chunk: int = 512,
                    progress: Callable[[str], None] | None = print,
                    **hyperparameters) -> ObjectiveReport:
  """Autodiff of `objective.loss` against `objective.weights` on random groups.

  Args:
    objective: the `Objective`, or the name of a loss registered with its
      closed form (`real_jax.losses.register(name, fn, weights=...)`, or
      `"package.module:attribute"`), checked at `hyperparameters`.
    cases: random groups per dtype (>= 1), in batches of 4 groups.
    dtypes: `float32` and/or `float64` (float64 needs `jax_enable_x64`).
    seed: seed of the random groups.
    chunk: batches per compiled call; the Figure 1 probe rides in one more
      chunk of the same shape, so each dtype compiles one program.
    progress: called with a progress line per chunk (None: quiet).

  Returns:
    An `ObjectiveReport`; `passed` is False when any relative error exceeds
    `TOLERANCE` (1e-4 in float32, 1e-9 in float64).

  Raises:
    ValueError: for a bad argument, or weights of the wrong shape.
    TypeError: if `objective` is not an `Objective`.
  """
  if isinstance(objective, str):
    objective = as_objective(objective, **hyperparameters)
  elif hyperparameters:
    raise TypeError(f"hyperparameters {sorted(hyperparameters)} go with a registered loss's "
                    "name; bind them in an Objective's functions instead.")
  if not isinstance(objective, Objective):
    raise TypeError(f"`objective` must be a grad_analysis.Objective or a registered loss's "
                    f"name, got {type(objective).__name__}.")
  if not isinstance(cases, int) or cases < 1:
    raise ValueError(f"`cases` must be an integer >= 1, got {cases!r}.")
  for dtype in dtypes:
    if dtype not in _properties.TOLERANCE:
      raise ValueError(f"`dtypes` must hold 'float32' and/or 'float64', got {dtype!r}.")
    if dtype == "float64" and not jax.config.jax_enable_x64:
      raise ValueError("`dtypes` asks for float64 but jax_enable_x64 is off: "
                       "`jax.config.update('jax_enable_x64', True)` first.")
  start = time.perf_counter()
  fig = _cases.figure1_probes()
  probes = [fig["positive"], fig["negative"]]
  n_cases = max(1, math.ceil(cases / _cases.GROUPS_PER_CASE))
  chunk = max(min(chunk, n_cases), 1)
  width = max(chunk, _cases.cases_needed(probes))
  n_chunks = math.ceil(n_cases / width)
  table = {"positive": {}, "negative": {}}
  curves = {}
  for dtype in dtypes:
    acc = {}
    spans, batches = _cases.chunk_batches(seed, n_chunks, width, jnp.dtype(dtype), probes)
    probe_auto, probe_closed = [], []
    for c, probe, batch in batches:
      batch.pop("tau")
      out = jax.device_get(_compare_jit(objective, **batch))
      if probe:
        probe_auto.append(np.asarray(out["probe_auto"], np.float64).reshape(-1))
        probe_closed.append(np.asarray(out["probe_closed"], np.float64).reshape(-1))
      for sign in _cases.SIGNS:
        acc[sign] = _sweep._merge(acc.get(sign), out[sign])
      if progress:
        progress(f"  {objective.name} [{dtype}] chunk {c + 1}/{n_chunks + 1}  "
                 f"{time.perf_counter() - start:5.1f}s")
    auto, closed = np.concatenate(probe_auto), np.concatenate(probe_closed)
    curves = {sign: (np.asarray(p.grid), auto[g:g + n], closed[g:g + n])
              for sign, p, (g, n) in zip(_cases.SIGNS, probes, spans, strict=True)}
    for sign in _cases.SIGNS:
      stats = acc[sign]
      stats["tolerance"] = _properties.TOLERANCE[dtype]
      stats["passed"] = bool(stats["max_rel_err"] <= stats["tolerance"])
      stats["zero_fraction"] = stats["zero"] / max(stats["cases"], 1)
      table[sign][dtype] = stats
  passed = all(r["passed"] for by_dtype in table.values() for r in by_dtype.values())
  return ObjectiveReport(objective.name, table, curves, passed, time.perf_counter() - start)


def format_report(report: ObjectiveReport) -> str:
  """The report as the command's table: sign x dtype, errors, zero share, status."""
  header = (f"{'objective':<14} {'sign':<9} {'dtype':<8} {'tokens':>10} {'max abs err':>12} "
            f"{'max rel err':>12} {'tol':>7} {'zero':>7}  status")
  lines = [header, "-" * len(header)]
  for sign, by_dtype in report.table.items():
    for dtype, r in by_dtype.items():
      lines.append(f"{report.name:<14} {sign:<9} {dtype:<8} {int(r['cases']):>10,d} "
                   f"{r['max_abs_err']:>12.3e} {r['max_rel_err']:>12.3e} {r['tolerance']:>7.0e} "
                   f"{r['zero_fraction']:>7.3f}  {_report.status(r)}")
  return "\n".join(lines)


def plot_objective(path: str, report: ObjectiveReport, *, title: str | None = None) -> None:
  """The Figure 1 panel pair (positives, negatives) of a checked objective."""
  _figures.plot_custom(path, report.name, report.curves, title)
