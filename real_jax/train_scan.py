r"""Training as one function: a whole RL run is a `lax.scan`, vmappable and shardable.

  train = make_train(cfg, graphdef, mesh=None)
  params, metrics = jax.jit(train)(base_params, jax.random.key(0), 0.5)
  # S seeds in one compiled program:
  params, metrics = jax.jit(jax.vmap(train, in_axes=(None, 0, None)))(base_params, keys, 0.5)

Everything a step does is JAX: prompts are drawn and verified by the task's
array forms (`jax_problems`, `jax_rewards`), rollouts come from the KV-cached
sampler, updates from `train.make_update`. With a `mesh`, rollout groups are
sharded over its `data` axis (whole groups per device: `prompts_per_step`
must be a multiple of the axis size) and parameters over `fsdp` where a
dimension divides; the losses reduce over the global batch, so counts of
groups, rollouts and tokens stay global.

Command (one host or several):
  python -m real_jax.train_scan --config=experiments/configs/addition.py \
      --workdir=DIR --seeds=0,1,2,3,4,5,6,7 [--distributed]
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from real_jax import sampling
from real_jax import tasks as tasks_lib
from real_jax import train as train_lib

SCAN_METRICS = ("loss", "reward_mean", "entropy", "response_length", "grad_norm",
                "mixed_group_fraction", "solve_all_fraction")


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


def shard_params(params, mesh: Mesh):
  """Places each parameter: its first dimension divisible by `fsdp` is split, the rest replicated."""
  fsdp = mesh.shape["fsdp"]

  def spec(x):
    for axis, size in enumerate(x.shape):
      if fsdp > 1 and size % fsdp == 0 and size >= fsdp:
        return NamedSharding(mesh, PartitionSpec(*([None] * axis + ["fsdp"])))
    return NamedSharding(mesh, PartitionSpec())
  return jax.device_put(params, jax.tree.map(spec, params))


def make_train(cfg: ml_collections.ConfigDict, graphdef, mesh: Mesh | None = None):
  """Returns `train(params, key, tau) -> (final params, metrics)`, a pure function.

  `metrics[name]` has one entry per step (`SCAN_METRICS`), plus
  `eval_pass_at_1`: held-out greedy pass@1 of the final policy, on the same
  prompts for every seed (drawn from `cfg.eval_seed`).
  """
  task = train_lib.make_task(cfg)
  if not isinstance(task, tasks_lib.ArithmeticTask):
    raise ValueError(f"make_train needs a task with array forms; {task.name} has none.")
  B, G = cfg.prompts_per_step, cfg.group_size
  if B % cfg.minibatches:
    raise ValueError(f"`prompts_per_step` ({B}) must be divisible by `minibatches` "
                     f"({cfg.minibatches}): a minibatch holds whole groups.")
  if mesh is not None and B % mesh.shape["data"]:
    raise ValueError(f"`prompts_per_step` ({B}) must be a multiple of the mesh's data axis "
                     f"({mesh.shape['data']}): groups are never split across devices.")
  optimizer = train_lib.make_optimizer(cfg)
  update = train_lib.make_update(cfg, graphdef, optimizer, task.prompt_len)
  R, mb = task.max_response, B // cfg.minibatches

  def constrain(x):
    if mesh is None:
      return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec("data")))

  def step(carry, key, tau):
    params, opt_state = carry
    k_data, k_sample, k_order = jax.random.split(key, 3)
    prompts, targets, target_len = task.jax_problems(k_data, B, "train")
    prompts = constrain(jnp.repeat(prompts, G, axis=0))
    rollout = sampling.sample(graphdef, params, prompts, k_sample, max_new=R,
                              temperature=cfg.temperature, top_p=cfg.top_p)
    rewards = task.jax_rewards(rollout.response, jnp.repeat(targets, G, axis=0),
                               jnp.repeat(target_len, G, axis=0)).reshape(B, G)
    tokens = constrain(rollout.tokens.reshape(B, G, -1))
    mask = constrain(rollout.mask.reshape(B, G, -1))
    old_logp = constrain(rollout.logp.reshape(B, G, -1))
    rewards = constrain(rewards)
    outs = []
    for epoch in range(cfg.ppo_epochs):
      order = jax.random.permutation(jax.random.fold_in(k_order, epoch), B)
      for i in range(cfg.minibatches):
        idx = order[i * mb:(i + 1) * mb]
        params, opt_state, out = update(params, opt_state, tokens[idx], old_logp[idx],
                                        mask[idx], rewards[idx], tau)
        outs.append(out)
    correct = rewards > 0.5
    metrics = {
        "loss": jnp.mean(jnp.stack([o["loss"] for o in outs])),
        "reward_mean": jnp.mean(rewards),
        "entropy": outs[0]["entropy"],
        "response_length": jnp.mean(jnp.sum(rollout.mask, -1).astype(jnp.float32)),
        "grad_norm": jnp.mean(jnp.stack([o["grad_norm"] for o in outs])),
        "mixed_group_fraction": jnp.mean((correct.any(-1) & ~correct.all(-1)).astype(jnp.float32)),
        "solve_all_fraction": jnp.mean(correct.all(-1).astype(jnp.float32)),
    }
    return (params, opt_state), metrics

  eval_prompts, eval_targets, eval_len = task.jax_problems(
      jax.random.key(cfg.eval_seed), cfg.eval_size, "eval")

  def train(params, key, tau):
    opt_state = optimizer.init(params)
    keys = jax.random.split(key, cfg.steps)
    (params, _), metrics = jax.lax.scan(lambda c, k: step(c, k, tau), (params, opt_state), keys)
    final = sampling.sample(graphdef, params, eval_prompts, jax.random.key(cfg.eval_seed),
                            max_new=R, temperature=cfg.eval_temperature)
    metrics["eval_pass_at_1"] = jnp.mean(task.jax_rewards(final.response, eval_targets, eval_len))
    return params, metrics

  return train


def run_seeds(cfg: ml_collections.ConfigDict, seeds, *, taus=None, mesh: Mesh | None = None,
              log=print, return_params: bool = False):
  """Trains one model per seed in a single compiled, vmapped program.

  `taus`, if given, holds one temperature per seed (the sweep's seed x tau
  points); otherwise every run uses `cfg.tau`. Returns `(metrics, seconds)`
  with `metrics[name]` of shape `[S, steps]` (`eval_pass_at_1`: `[S]`), as
  NumPy arrays on every host; with `return_params`, also the final
  parameters (leading axis S).
  """
  graphdef, params, _ = train_lib.build_base_model(cfg, log=log)
  if mesh is not None:
    params = shard_params(params, mesh)
  train = make_train(cfg, graphdef, mesh)
  keys = jax.vmap(jax.random.key)(jnp.asarray([int(s) for s in seeds]))
  taus = jnp.full((len(seeds),), cfg.tau, jnp.float32) if taus is None else jnp.asarray(
      taus, jnp.float32)
  run = jax.jit(jax.vmap(train, in_axes=(None, 0, 0)))
  start = time.perf_counter()
  final_params, metrics = run(params, keys, taus)
  if jax.process_count() > 1:  # arrays span hosts: gather them everywhere
    from jax.experimental import multihost_utils  # noqa: PLC0415
    metrics = multihost_utils.process_allgather(metrics)
  metrics = jax.tree.map(lambda x: np.asarray(jax.device_get(x)), metrics)
  seconds = time.perf_counter() - start
  return (metrics, seconds, final_params) if return_params else (metrics, seconds)


def metric_records(metrics: dict) -> list[dict]:
  """One run's scan metrics (`[steps]` each) as the trainer's `metrics.jsonl` records."""
  steps = len(metrics["loss"])
  records = [{"step": t + 1, **{k: float(metrics[k][t]) for k in SCAN_METRICS}}
             for t in range(steps)]
  records[-1]["eval_pass_at_1"] = float(metrics["eval_pass_at_1"])
  return records


def write_metrics(workdir: str, metrics: dict) -> str:
  """Writes one run's `metrics.jsonl` into `workdir`; returns its path."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "metrics.jsonl")
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in metric_records(metrics))
  return path


def main(argv, flags_):
  del argv
  from absl import logging  # noqa: PLC0415
  logging.set_verbosity(logging.WARNING)
  cfg = flags_["config"].value
  if flags_["distributed"].value:
    jax.distributed.initialize()  # coordinator, process count and id from the environment
  mesh = make_mesh(fsdp=flags_["fsdp"].value) if len(jax.devices()) > 1 else None
  lead = jax.process_index() == 0
  log = print if lead else (lambda _: None)
  log(f"{jax.process_count()} process(es), {len(jax.devices())} device(s): "
      f"{jax.devices()[0].device_kind}; mesh {dict(mesh.shape) if mesh else 'none'}")
  if jax.process_count() > 1:
    # One process builds the base model; the others wait, then load it.
    from jax.experimental import multihost_utils  # noqa: PLC0415
    if lead:
      train_lib.build_base_model(cfg, log=log)
    multihost_utils.sync_global_devices("real_jax base model")
  metrics, seconds, params = run_seeds(cfg, flags_["seeds"].value, mesh=mesh, log=log,
                                       return_params=True)
  # Every process takes part in an orbax save; orbax writes each shard once.
  import orbax.checkpoint as ocp  # noqa: PLC0415
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.abspath(os.path.join(flags_["workdir"].value, "final_params")),
                    train_lib.nnx.to_pure_dict(params), force=True)
  checkpointer.wait_until_finished()
  if lead:  # only process 0 writes
    for i, seed in enumerate(flags_["seeds"].value):
      write_metrics(os.path.join(flags_["workdir"].value, f"seed{seed}"),
                    {k: v[i] for k, v in metrics.items()})
    print(f"{len(flags_['seeds'].value)} seeds x {cfg.steps} steps in {seconds:.1f}s; final "
          f"held-out pass@1 per seed: {np.round(metrics['eval_pass_at_1'], 3).tolist()}")


if __name__ == "__main__":
  import functools  # noqa: PLC0415

  from absl import app, flags  # noqa: PLC0415
  from ml_collections import config_flags  # noqa: PLC0415
  _flags = {
      "config": config_flags.DEFINE_config_file("config", None, "Experiment config file."),
      "workdir": flags.DEFINE_string("workdir", None, "Output folder.", required=True),
      "seeds": flags.DEFINE_list("seeds", ["0"], "Seeds, trained in one vmapped program."),
      "fsdp": flags.DEFINE_integer("fsdp", 1, "Devices per parameter shard (mesh axis fsdp)."),
      "distributed": flags.DEFINE_bool("distributed", False,
                                       "Call jax.distributed.initialize() (multi-host)."),
  }
  app.run(functools.partial(main, flags_=_flags))
