r"""Wall time of S seeds in one vmapped program against S sequential runs.

  python benchmarks/vmap_seeds.py [--seeds=8] [--steps=20] [--json=FILE]

Both sides run `real_jax.training.scan.make_train` on the toy addition config
from the same base model. Compilation is timed apart: the sequential side
compiles its single-seed program once and reuses it for every seed, so the
comparison is between running times.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from real_jax.training import base_model
from real_jax.training import config as config_lib
from real_jax.training import scan


def _timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def measure(seeds: int, steps: int, base_dir: str) -> dict:
  """Times `seeds` seeds vmapped against the same seeds one after another."""
  cfg = config_lib.get_config()
  cfg.base.dir, cfg.steps, cfg.eval_every = base_dir, steps, steps
  graphdef, params, _ = base_model.build_base_model(cfg, log=lambda _: None)
  train = scan.make_train(cfg, graphdef)
  keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
  tau, lr = cfg.tau, cfg.lr

  single = jax.jit(train).lower(params, keys[0], tau, lr)
  t0 = time.perf_counter()
  single = single.compile()
  compile_single = time.perf_counter() - t0
  vmapped = jax.jit(jax.vmap(train, in_axes=(None, 0, None, None))).lower(params, keys, tau, lr)
  t0 = time.perf_counter()
  vmapped = vmapped.compile()
  compile_vmapped = time.perf_counter() - t0

  _, one = _timed(single, params, keys[0], tau, lr)
  sequential = 0.0
  for i in range(seeds):
    _, t = _timed(single, params, keys[i], tau, lr)
    sequential += t
  (_, metrics), together = _timed(vmapped, params, keys, tau, lr)
  return {
      "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
      "seeds": seeds, "steps": steps,
      "rollouts_per_step": cfg.prompts_per_step * cfg.group_size,
      "one_seed_s": one, "sequential_s": sequential, "vmapped_s": together,
      "speedup_vmapped_over_sequential": sequential / together,
      "vmapped_over_one_seed": together / one,
      "compile_single_s": compile_single, "compile_vmapped_s": compile_vmapped,
      "final_pass_at_1": np.asarray(metrics["eval_pass_at_1"])[:, -1].round(3).tolist(),
  }


def report(figures: dict) -> None:
  n = figures["seeds"]
  print(f"device: {figures['device']} ({figures['cpu_count']} CPUs), {n} seeds x "
        f"{figures['steps']} steps x {figures['rollouts_per_step']} rollouts/step")
  print(f"{'one seed':<28}{figures['one_seed_s']:8.2f} s")
  print(f"{f'{n} seeds, sequential':<28}{figures['sequential_s']:8.2f} s")
  print(f"{f'{n} seeds, one vmapped program':<28}{figures['vmapped_s']:8.2f} s   "
        f"({figures['speedup_vmapped_over_sequential']:.2f}x faster than sequential, "
        f"{figures['vmapped_over_one_seed']:.2f}x one seed)")
  print(f"compile: single {figures['compile_single_s']:.1f} s, vmapped {figures['compile_vmapped_s']:.1f} s")


def main(argv, flags_):
  del argv
  logging.set_verbosity(logging.WARNING)
  figures = measure(flags_["seeds"].value, flags_["steps"].value, flags_["base_dir"].value)
  report(figures)
  if flags_["json"].value:
    with open(flags_["json"].value, "w") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  # Flags are defined only here, so that benchmarks/training.py can import measure().
  import functools
  _flags = {
      "seeds": flags.DEFINE_integer("seeds", 8, "Number of seeds S."),
      "steps": flags.DEFINE_integer("steps", 20, "RL steps per run."),
      "base_dir": flags.DEFINE_string("base_dir", "runs/base_models", "Where base models are kept."),
      "json": flags.DEFINE_string("json", None, "Also write the figures to this JSON file."),
  }
  app.run(functools.partial(main, flags_=_flags))
