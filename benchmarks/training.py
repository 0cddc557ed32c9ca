r"""Sampling and update throughput of the toy policy, against the machine's own limits.

  python benchmarks/training.py [--repeats=5] [--json=FILE]

For two sizes of the policy it measures, in one run:
- sampling throughput with the KV cache against recomputing the whole prefix at
  every step (tokens/s, response length 64, 128 sequences);
- the RL update step's achieved FLOP/s (XLA's own FLOP count of the compiled
  step over its median time) against a large float32 matmul timed in the same
  run;
and, for the toy config, 8 vmapped seeds against 8 sequential runs
(`benchmarks/vmap_seeds.py`).
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Run as a script, the benchmarks folder is on sys.path: its helpers import by name.
import vmap_seeds
from _common import compiled_flops
from _common import matmul_rate
from _common import median_time
from real_jax import model as model_lib
from real_jax import sampling
from real_jax.training import config as config_lib
from real_jax.training import step as step_lib

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median reported).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
_SKIP_SEEDS = flags.DEFINE_bool("skip_seeds", False, "Skip the vmapped-seeds measurement.")

SIZES = {"small (64 wide, 2 layers)": (64, 2, 4), "larger (256 wide, 4 layers)": (256, 4, 8)}
PROMPT, RESPONSE, SEQUENCES, VOCAB = 8, 64, 128, 16


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  repeats = _REPEATS.value
  peak = matmul_rate(repeats)
  print(f"device: {jax.devices()[0].device_kind} ({os.cpu_count()} CPUs), JAX {jax.__version__}")
  print(f"float32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s\n")
  figures = {"matmul_GFLOPs": peak / 1e9, "sizes": {}}
  for label, (width, depth, heads) in SIZES.items():
    cfg = model_lib.PolicyConfig(vocab_size=VOCAB, max_len=PROMPT + RESPONSE, width=width,
                                 depth=depth, heads=heads)
    graphdef, state = nnx.split(model_lib.Policy(cfg, rngs=nnx.Rngs(0)))
    prompts = jax.random.randint(jax.random.key(0), (SEQUENCES, PROMPT), 3, VOCAB)
    rates = {}
    for cached in (True, False):
      run = lambda c=cached: jax.block_until_ready(sampling.sample(  # noqa: E731
          graphdef, state, prompts, jax.random.key(1), max_new=RESPONSE, use_cache=c))
      rates[cached] = SEQUENCES * RESPONSE / median_time(run, repeats)

    # The RL update on one minibatch of the toy config's shape, at this model size.
    rl = config_lib.get_config()
    rl.model.width, rl.model.depth, rl.model.heads = width, depth, heads
    optimizer = step_lib.make_optimizer(rl)
    update = step_lib.make_update(rl, graphdef, optimizer, PROMPT)
    b, g = rl.prompts_per_step // rl.minibatches, rl.group_size
    tokens = jax.random.randint(jax.random.key(2), (b, g, PROMPT + RESPONSE), 3, VOCAB)
    old = jnp.full((b, g, RESPONSE), -2.0)
    mask = jnp.ones((b, g, RESPONSE), bool)
    rewards = (jax.random.uniform(jax.random.key(3), (b, g)) < 0.5).astype(jnp.float32)
    opt_state = step_lib.init_state(optimizer, state, jax.random.key(0), rl.lr).opt_state
    compiled = jax.jit(update).lower(state, opt_state, tokens, old, mask, rewards, 0.5).compile()
    seconds = median_time(lambda: jax.block_until_ready(
        compiled(state, opt_state, tokens, old, mask, rewards, 0.5)), repeats)
    achieved = compiled_flops(compiled) / seconds
    figures["sizes"][label] = {
        "cached_tokens_per_s": rates[True], "recompute_tokens_per_s": rates[False],
        "cache_speedup": rates[True] / rates[False], "update_s": seconds,
        "update_GFLOPs": achieved / 1e9, "update_fraction_of_matmul": achieved / peak}
    f = figures["sizes"][label]
    print(f"{label}")
    print(f"  sampling, KV cache      {f['cached_tokens_per_s']:>10,.0f} tokens/s")
    print(f"  sampling, recompute     {f['recompute_tokens_per_s']:>10,.0f} tokens/s   "
          f"(cache {f['cache_speedup']:.1f}x faster at response length {RESPONSE})")
    print(f"  update step             {seconds * 1e3:>10.1f} ms, {achieved / 1e9:.1f} GFLOP/s = "
          f"{100 * f['update_fraction_of_matmul']:.0f}% of the matmul rate "
          f"({b} groups x {g} rollouts x {PROMPT + RESPONSE} tokens)")
  if not _SKIP_SEEDS.value:
    print()
    figures["vmap_seeds"] = vmap_seeds.measure(8, 20, "runs/base_models")
    vmap_seeds.report(figures["vmap_seeds"])
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  app.run(main)
