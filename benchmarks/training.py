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

import os

from _common import matmul_rate
from _common import measure_update_and_sampling
from _common import training_table
from _common import write_json_and_table
from absl import app
from absl import flags
from absl import logging
import jax

# Run as a script, the benchmarks folder is on sys.path: its helpers import by name.
import vmap_seeds

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median reported).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file, and their Markdown table beside it (.md).")
_SKIP_SEEDS = flags.DEFINE_bool("skip_seeds", False, "Skip the vmapped-seeds measurement.")

SIZES = {"small (64 wide, 2 layers)": (64, 2, 4), "larger (256 wide, 4 layers)": (256, 4, 8)}
RESPONSE, SEQUENCES = 64, 128


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  repeats = _REPEATS.value
  peak = matmul_rate(repeats)
  print(f"device: {jax.devices()[0].device_kind} ({os.cpu_count()} CPUs), JAX {jax.__version__}")
  print(f"float32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s\n")
  figures = {"matmul_GFLOPs": peak / 1e9, "sizes": {}}
  for label, (width, depth, heads) in SIZES.items():
    f = measure_update_and_sampling(width, depth, heads, sequences=SEQUENCES,
                                    response=RESPONSE, repeats=repeats)
    achieved = f.pop("update_flops") / f["update_s"]
    f.update(update_GFLOPs=achieved / 1e9, update_fraction_of_matmul=achieved / peak)
    figures["sizes"][label] = f
    print(f"{label}")
    print(f"  sampling, KV cache      {f['cached_tokens_per_s']:>10,.0f} tokens/s")
    print(f"  sampling, recompute     {f['recompute_tokens_per_s']:>10,.0f} tokens/s   "
          f"(cache {f['cache_speedup']:.1f}x faster at response length {RESPONSE})")
    print(f"  update step             {f['update_s'] * 1e3:>10.1f} ms, {achieved / 1e9:.1f} "
          f"GFLOP/s = {100 * f['update_fraction_of_matmul']:.0f}% of the matmul rate "
          f"({f['update_batch']})")
  if not _SKIP_SEEDS.value:
    print()
    figures["vmap_seeds"] = vmap_seeds.measure(8, 20, "runs/base_models")
    vmap_seeds.report(figures["vmap_seeds"])
  if _JSON.value:
    write_json_and_table(_JSON.value, figures, training_table)


if __name__ == "__main__":
  app.run(main)
