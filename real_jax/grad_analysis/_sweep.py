"""The randomized sweep: its schedule, from cases to the verdicts of `run_sweep`.

The parts are modules of their own: the cases and probes (`_cases`), the
device statistics (`_stats`), the stated properties and verdicts
(`_properties`). This module runs them: chunks of cases through the compiled
programs of each dtype, on `RUNNERS` threads, the probe chunks riding along,
and the results merged into a `SweepResult`.
"""

from __future__ import annotations

from collections.abc import Callable
import concurrent.futures
import dataclasses
import functools
import math
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from real_jax import losses
from real_jax.domination import dominated
from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis._cases import GROUPS_PER_CASE
from real_jax.grad_analysis._cases import SIGNS
from real_jax.grad_analysis._cases import Curve
from real_jax.grad_analysis._cases import batch_shape
from real_jax.grad_analysis._cases import cases_needed
from real_jax.grad_analysis._cases import chunk_batches
from real_jax.grad_analysis._cases import curves_batch
from real_jax.grad_analysis._cases import figure1_probes
from real_jax.grad_analysis._cases import monotonic_curves
from real_jax.grad_analysis._properties import TOLERANCE
from real_jax.grad_analysis._properties import bound_verdict
from real_jax.grad_analysis._properties import monotonic_verdict
from real_jax.grad_analysis._stats import _lower
from real_jax.grad_analysis._stats import compare_chunk
from real_jax.grad_analysis._stats import program_groups

Array = jax.Array

# The label-based objectives, then every advantage-weighted configuration
# (each registered loss, plus dual-clip GRPO and GRPO with RLOO advantages).
OBJECTIVES = tuple(losses.LABEL_LOSSES) + tuple(cf.CONFIGURATIONS)

CHUNK = 256  # sweep cases per compiled call: small buffers stay in cache
# Threads that run each compiled program's chunks: two keep a small CPU's
# cores busy while one thread waits on the host (docs/guide/performance.md).
RUNNERS = 2


def run_curves(name: str, curves: list[Curve], dtype, chunk: int = CHUNK) -> list[tuple]:
  """`(grid, autodiff |W|, closed-form |W|)` for each curve, through `compare_chunk`.

  The curves are laid out in chunks of `chunk` cases, the command's shape, so
  its compiled program is reused.
  """
  n = math.ceil(cases_needed(curves) / chunk)
  batch, spans = curves_batch(curves, n * chunk, dtype)
  auto, closed = [], []
  for i in range(n):
    out = compare_chunk(name, **{k: v[i * chunk:(i + 1) * chunk] for k, v in batch.items()})
    auto.append(np.asarray(out["probe_auto"], np.float64).reshape(-1))
    closed.append(np.asarray(out["probe_closed"], np.float64).reshape(-1))
  auto, closed = np.concatenate(auto), np.concatenate(closed)
  return [(np.asarray(c.grid), auto[g:g + size], closed[g:g + size])
          for c, (g, size) in zip(curves, spans, strict=True)]


@dataclasses.dataclass
class SweepResult:
  table: dict        # table[objective][sign][dtype] -> stats
  properties: dict   # properties[objective][sign][dtype] -> bounded, monotonic, ...
  domination: dict   # domination[objective] -> share statistics (first dtype)
  identities: dict   # name -> max relative error (last dtype)
  figure_curves: dict  # figure_curves[objective][sign] -> (s, autodiff, closed), last dtype
  seconds: float
  # neutral[objective][dtype] -> error stats of the tokens with A = 0, which
  # only a penalty moves (objectives with such tokens moving only)
  neutral: dict = dataclasses.field(default_factory=dict)

  @property
  def passed(self) -> bool:
    """Every comparison within its tolerance, the tokens with A = 0 included."""
    return (all(r["passed"] for by_sign in self.table.values()
                for by_dtype in by_sign.values() for r in by_dtype.values())
            and all(r["passed"] for by_dtype in self.neutral.values() for r in by_dtype.values()))


def _merge(acc: dict | None, new: dict) -> dict:
  new = {k: float(v) for k, v in new.items()}
  if acc is None:
    return new
  return {k: acc[k] + v if k in ("cases", "nonpositive", "zero", "edge_excluded", "moving")
          else max(acc[k], v) for k, v in new.items()}


def _with_default_device(fn: Callable, device) -> Callable:
  """`fn` run under `jax.default_device(device)` (as it is, for None)."""
  if device is None:
    return fn

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.default_device(device):
      return fn(*args, **kwargs)
  return wrapped


def _figure_curves(probe_out: dict, dtype_name: str, spans: list[tuple[int, int]],
                   fig: dict[str, Curve], first: int, objectives) -> dict:
  """figure_curves[objective][sign] -> (s, autodiff, closed) of `dtype_name`'s
  probe chunks; the figure's curves start at curve number `first`."""
  curves = {}
  for name in objectives:
    auto, closed, _ = probe_out[(dtype_name, name)]
    curves[name] = {}
    for k, s in enumerate(SIGNS):
      g, n = spans[first + k]
      curves[name][s] = (np.asarray(fig[s].grid), auto[g:g + n], closed[g:g + n])
  return curves


def run_sweep(cases: int, dtypes: tuple[str, ...], *, seed: int = 0,
              chunk: int = CHUNK, objectives=OBJECTIVES,
              progress: Callable[[str], None] = print,
              on_figure_curves: Callable[[dict], None] | None = None) -> SweepResult:
  """Runs `cases` random groups per dtype through every objective, and the probes.

  Each program runs the probes first, so `on_figure_curves(figure_curves)`
  (the result's `figure_curves`) is called as soon as the last dtype's are
  in, on a thread of its own beside the rest of the sweep: the command
  draws its figures there while the random cases still run. The sweep
  returns when it has returned, and raises what it raises.
  """
  start = time.perf_counter()
  n_cases = max(1, math.ceil(cases / GROUPS_PER_CASE))
  n_chunks = math.ceil(n_cases / chunk)
  mono = monotonic_curves(seed)
  fig = figure1_probes()
  probe_spans = {}    # dtype -> each probe curve's (first group, length)
  probe_parts = {}    # (dtype, name) -> {chunk: (autodiff, closed form, live)}
  acc = {}
  neutral = {}        # (name, dtype) -> error stats of the tokens with A = 0
  shares = {name: {} for name in objectives}  # name -> {chunk: shares}
  identities = {}
  lock = threading.Lock()
  probes = mono + list(fig.values())
  n_probe_chunks = math.ceil(cases_needed(probes) / chunk)
  last_chunk = n_chunks + n_probe_chunks - 1

  def collect(dtype_name, c, probe, outs):
    outs = jax.device_get(outs)
    with lock:
      for name, out in outs.items():
        if probe:
          probe_parts.setdefault((dtype_name, name), {})[c] = tuple(
              np.asarray(out[k]).reshape(-1) for k in ("probe_auto", "probe_closed", "probe_live"))
        for s in SIGNS:
          acc[(name, s, dtype_name)] = _merge(acc.get((name, s, dtype_name)), out[s])
        if "neutral" in out:
          neutral[(name, dtype_name)] = _merge(neutral.get((name, dtype_name)), out["neutral"])
        if name in cf.LABEL_FORMS and cf.LABEL_FORMS[name].identity:
          identities[(name, dtype_name)] = max(identities.get((name, dtype_name), 0.0),
                                               float(out["identity"]))
        if dtype_name == dtypes[0] and not probe:
          counted = np.asarray(out["share_counted"])
          shares[name][c] = np.asarray(out["share"], np.float64)[counted]

  def joined(parts: dict) -> tuple:  # {chunk: arrays} -> arrays joined in chunk order
    return tuple(np.concatenate(x) for x in zip(*(parts[c] for c in sorted(parts)), strict=True))

  # The probes ride in extra chunks of the same shape, so each program is
  # compiled once per dtype. Compiling is most of a cold run on a small CPU,
  # so nothing waits for all of it: one thread traces and lowers the
  # programs (Python, holding the GIL) in the order they are first needed,
  # a second compiles them (XLA, about 1.7 of 2 cores; two compilations at
  # once only slowed the first), and each program runs its chunks on
  # `RUNNERS` threads as soon as it is compiled, the two dtypes side by side.
  # Dispatch is asynchronous: a thread queues its next chunk before it
  # fetches the results of the one before.
  groups = program_groups(objectives)
  lowerer = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  runners = concurrent.futures.ThreadPoolExecutor(
      max_workers=len(groups) * len(dtypes) * RUNNERS)
  # The caller's default device (`jax.default_device`, a setting of its
  # thread) holds on every thread: where the programs compile and run.
  device = jax.config.jax_default_device
  on_device = lambda fn: _with_default_device(fn, device)  # noqa: E731
  drawer = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  drawn = []          # the future of on_figure_curves
  probes_in = set()   # (program, chunk) of the last dtype's probe chunks collected
  programs, feeds = {}, {}
  for d in dtypes:
    for names in groups:
      lowered = lowerer.submit(on_device(_lower), names, batch_shape(chunk, d), d == dtypes[0])
      programs[(d, names)] = compiler.submit(on_device(lambda lowered=lowered: lowered.result()()))
      # A program's runners share its batches (a generator: `next` under a lock).
      probe_spans[d], batches = chunk_batches(seed, n_chunks, chunk, jnp.dtype(d), probes,
                                              probes_first=True)
      feeds[(d, names)] = (threading.Lock(), batches)

  def run(dtype_name, names):
    program = programs[(dtype_name, names)].result()
    feed_lock, batches = feeds[(dtype_name, names)]
    pending = None
    while True:
      with feed_lock:
        c, probe, batch = next(batches, (None, None, None))
      if c is not None:
        outs = program(**batch)
      if pending is not None:
        collect(*pending)
        if pending[2]:
          probe_collected(*pending[:2], names)
      if c is None:
        return
      pending = (dtype_name, c, probe, outs)
      if names == groups[-1] and (c % 16 == 15 or c == n_chunks - 1 or c == last_chunk):
        done = min((c + 1) * chunk, n_cases) * GROUPS_PER_CASE
        what = "probe grids" if probe else f"{done:>8,d}/{n_cases * GROUPS_PER_CASE:,d} groups"
        progress(f"  [{dtype_name}] {what}  {time.perf_counter() - start:6.1f}s")

  def probe_collected(dtype_name, c, names):
    """Hands the figure's curves on once the last dtype's probe chunks are all in."""
    if on_figure_curves is None or dtype_name != dtypes[-1]:
      return
    with lock:
      probes_in.add((names, c))
      if len(probes_in) < len(groups) * n_probe_chunks:
        return
      probe_out = {(dtype_name, n): joined(probe_parts[(dtype_name, n)]) for n in objectives}
    curves = _figure_curves(probe_out, dtype_name, probe_spans[dtype_name], fig, len(mono),
                            objectives)
    drawn.append(drawer.submit(on_device(on_figure_curves), curves))

  try:
    streams = [runners.submit(on_device(run), d, names)
               for d in dtypes for names in groups for _ in range(RUNNERS)]
    for stream in concurrent.futures.as_completed(streams):
      stream.result()  # raises the first failure
    for future in drawn:
      future.result()
  finally:
    for pool in (lowerer, compiler, runners, drawer):
      pool.shutdown(wait=False, cancel_futures=True)
  probe_out = {k: joined(v) for k, v in probe_parts.items()}

  spans = probe_spans[dtypes[-1]]
  table = {name: {s: {} for s in SIGNS} for name in objectives}
  properties = {name: {s: {} for s in SIGNS} for name in objectives}
  for name in objectives:
    for s in SIGNS:
      for dtype_name in dtypes:
        stats = acc[(name, s, dtype_name)]
        stats["tolerance"] = TOLERANCE[dtype_name]
        stats["passed"] = bool(stats["max_rel_err"] <= TOLERANCE[dtype_name])
        auto, closed, live = probe_out[(dtype_name, name)]
        rows = [i for i, c in enumerate(mono) if c.probe_correct == (s == "positive")]
        grid = lambda x, rows=rows: np.stack(  # noqa: E731
            [x[spans[i][0]:spans[i][0] + spans[i][1]] for i in rows])
        props = monotonic_verdict(name, s, grid(auto), grid(closed), jnp.dtype(dtype_name),
                                  live=grid(live))
        props.update(bound_verdict(name, s, stats, dtype_name))
        properties[name][s][dtype_name] = props
        stats["bounded"], stats["monotonic"] = props["bounded"], props["monotonic"]
        stats["zero_fraction"] = props["zero_fraction"]
        table[name][s][dtype_name] = stats

  neutral_table = {}
  for (name, dtype_name), stats in neutral.items():
    if stats["moving"]:
      stats = dict(stats, tolerance=TOLERANCE[dtype_name],
                   passed=bool(stats["max_rel_err"] <= TOLERANCE[dtype_name]))
      neutral_table.setdefault(name, {})[dtype_name] = stats
  figure = _figure_curves(probe_out, dtypes[-1], spans, fig, len(mono), objectives)
  domination = {}
  for name in objectives:
    v = np.concatenate([shares[name][c] for c in sorted(shares[name])]) if shares[name] \
        else np.zeros(0)
    summary = lambda f, v=v: float(f(v)) if v.size else None  # noqa: E731
    domination[name] = dict(groups=int(v.size), mean=summary(np.mean), median=summary(np.median),
                            p90=summary(lambda x: np.quantile(x, 0.9)),
                            above_half=summary(lambda x: np.mean(dominated(x))))
  last = dtypes[-1]
  identity_table = {form.identity[0]: identities[(name, last)]
                    for name, form in cf.LABEL_FORMS.items() if (name, last) in identities}
  return SweepResult(table, properties, domination, identity_table, figure,
                     time.perf_counter() - start, neutral_table)
