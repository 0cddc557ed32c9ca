r"""A whole RL run as one `lax.scan`: vmappable over seed, tau and learning rate, shardable.

  train = make_train(cfg, graphdef, mesh=None)
  params, run = jax.jit(train)(base_params, jax.random.key(0), 0.5, 3e-4)
  # S seeds x taus x learning rates in one compiled program:
  params, run = jax.jit(jax.vmap(train, in_axes=(None, 0, 0, 0)))(base_params, keys, taus, lrs)
  # or, in programs of a fixed width (bit-for-bit reruns): run_points(cfg, seeds, taus=, lrs=)

`run[name]` has one value per step for each of `metrics.STEP_METRICS`, and
one per entry of `metrics.eval_steps(steps, eval_every)` for each of
`metrics.EVAL_METRICS` (`eval_pass_at_1`, `test_pass_at_1`): the base model at step 0, then every `eval_every` steps and the last step,
exactly the evaluations the resumable trainer (`loop.train`) makes. Both
drivers run the same `step.make_step`, so for a config and seed they log the
same metrics (tested).

With a `mesh` of axes `("data", "fsdp")`, rollout groups are sharded over
`data` and parameters over `fsdp` (`shard_params`).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import functools
import time

from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import ml_collections
import numpy as np

from real_jax import distributed
from real_jax import metric_names
from real_jax.training import base_model
from real_jax.training import config as config_lib
from real_jax.training import step as step_lib

__all__ = [
    "make_mesh",
    "default_mesh",
    "shard_params",
    "make_train",
    "run_points",
    "point",
]


def make_mesh(data: int | None = None, fsdp: int = 1, devices=None) -> Mesh:
  """A `(data, fsdp)` mesh over `devices` (default: all), with Auto axes.

  Auto axes let `with_sharding_constraint` place the batch; `jax.make_mesh`
  would default to Explicit axes.
  """
  devices = list(jax.devices() if devices is None else devices)
  if fsdp < 1 or len(devices) % fsdp:
    raise ValueError(f"`fsdp` ({fsdp}) must divide the number of devices ({len(devices)}).")
  data = len(devices) // fsdp if data is None else data
  if data * fsdp > len(devices):
    raise ValueError(f"mesh {data}x{fsdp} needs more than the {len(devices)} devices.")
  grid = np.array(devices[:data * fsdp]).reshape(data, fsdp)
  axis_type = getattr(jax.sharding, "AxisType", None)
  if axis_type is not None:
    return Mesh(grid, ("data", "fsdp"), axis_types=(axis_type.Auto, axis_type.Auto))
  return Mesh(grid, ("data", "fsdp"))


def default_mesh(fsdp: int = 1) -> Mesh | None:
  """The commands' mesh: every device of every process, or None on a single device."""
  return make_mesh(fsdp=fsdp) if jax.device_count() > 1 else None


def shard_params(params, mesh: Mesh):
  """Places each parameter: its first dimension divisible by `fsdp` is split, the rest replicated."""
  fsdp = mesh.shape["fsdp"]

  def spec(x):
    for axis, size in enumerate(x.shape):
      if fsdp > 1 and size % fsdp == 0 and size >= fsdp:
        return NamedSharding(mesh, PartitionSpec(*([None] * axis + ["fsdp"])))
    return NamedSharding(mesh, PartitionSpec())
  return jax.device_put(params, jax.tree.map(spec, params))


def make_train(cfg: ml_collections.ConfigDict, graphdef: nnx.GraphDef, mesh: Mesh | None = None
               ) -> Callable:
  """Returns `train(params, key, tau, lr) -> (final params, run metrics)`, a pure function."""
  step = step_lib.make_step(cfg, graphdef, mesh)
  evaluate = step_lib.make_evaluate(cfg, graphdef)
  optimizer = step_lib.make_optimizer(cfg)
  n_chunks, rest = divmod(cfg.steps, cfg.eval_every)
  steps = functools.partial(step_lib.scan_steps, step)

  def train(params, key, tau, lr):
    state = step_lib.init_state(optimizer, params, key, lr, cfg.sampler_lag)
    evals = [jax.tree.map(lambda x: x[None], evaluate(params))]

    def chunk(state, _):
      state, m = steps(state, tau, cfg.eval_every)
      return state, (m, evaluate(state.params))

    state, (m, ev) = jax.lax.scan(chunk, state, None, length=n_chunks)
    parts = [jax.tree.map(lambda x: x.reshape(-1), m)]
    evals.append(ev)
    if rest:
      state, m_rest = steps(state, tau, rest)
      parts.append(m_rest)
      evals.append(jax.tree.map(lambda x: x[None], evaluate(state.params)))
    run = {k: jnp.concatenate([p[k] for p in parts]) for k in metric_names.STEP_METRICS}
    for k in metric_names.EVAL_METRICS:
      run[k] = jnp.concatenate([e[k] for e in evals])
    return state.params, run

  return train


def run_points(cfg: ml_collections.ConfigDict, seeds: Sequence[int], *,
               taus: Sequence[float] | None = None, lrs: Sequence[float] | None = None,
               mesh: Mesh | None = None, log: Callable[[str], None] = print,
               return_params: bool = False):
  """Trains one run per (seed, tau, lr) triple, `cfg.points_per_program` at a time.

  Every program vmaps exactly `cfg.points_per_program` runs; the last is
  padded with inert copies of its first run, whose results are dropped. XLA
  rounds a vmapped program differently at different widths but, at one
  width, a run's arithmetic does not depend on its neighbours or its slot: so
  a run's metrics are identical to the last bit whatever else it is trained
  with (tested). All programs of a call share one compilation.

  `taus` and `lrs` default to the config's, one per seed otherwise. Returns
  `(runs, seconds)`, with `runs[name]` a NumPy array with a leading axis of
  one entry per point (gathered on every host); with `return_params`, also
  the final parameters (leading axis: points).
  """
  n = len(seeds)
  taus = [cfg.tau] * n if taus is None else list(taus)
  lrs = [cfg.lr] * n if lrs is None else list(lrs)
  if not len(taus) == len(lrs) == n:
    raise ValueError(f"`seeds`, `taus` and `lrs` must have one entry per point; got "
                     f"{n}, {len(taus)} and {len(lrs)}.")
  if n == 0:
    raise ValueError("`seeds` is empty: there is no point to train.")
  config_lib.validate(cfg)  # before the base model is built, not after
  width = cfg.points_per_program
  graphdef, params, _ = base_model.build_base_model(cfg, log=log)
  if mesh is not None:
    params = shard_params(params, mesh)
  train = make_train(cfg, graphdef, mesh)
  program = jax.jit(jax.vmap(train, in_axes=(None, 0, 0, 0)))
  seeds = np.asarray([int(s) for s in seeds])
  taus, lrs = np.asarray(taus, np.float32), np.asarray(lrs, np.float32)
  metrics, finals = [], []
  start = time.perf_counter()
  for first in range(0, n, width):
    real = np.arange(first, min(first + width, n))
    slots = np.concatenate([real, np.full(width - len(real), first)])
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds[slots]))
    # The program's collectives span every process; its length is the config's.
    with distributed.collective(f"training {len(real)} point(s)", timeout_s=None):
      final_params, runs = program(params, keys, jnp.asarray(taus[slots]),
                                   jnp.asarray(lrs[slots]))
      jax.block_until_ready(runs)
    runs = distributed.allgather(runs, "run metrics")
    metrics.append({k: v[:len(real)] for k, v in runs.items()})  # the padding's are dropped
    finals.append(final_params if return_params else None)
  seconds = time.perf_counter() - start
  runs = {k: np.concatenate([m[k] for m in metrics]) for k in metrics[0]}
  if not return_params:
    return runs, seconds
  if len(finals) > 1 or n < width:
    # In one program, so that parameters spanning processes are joined where they live.
    finals = jax.jit(lambda parts: jax.tree.map(lambda *xs: jnp.concatenate(xs)[:n], *parts))(
        finals)
  else:
    finals = finals[0]
  return runs, seconds, finals


def point(runs: dict, i: int) -> dict:
  """The metrics of point `i` of `run_points`' output."""
  return {k: v[i] for k, v in runs.items()}
