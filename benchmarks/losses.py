r"""Forward + gradient of every loss: time, effective bandwidth, NumPy and PyTorch references.

  python benchmarks/losses.py [--shapes=64x8x1024,256x8x4096] [--repeats=7] [--json=FILE]

For each `[B, G, T]` float32 batch and each loss of `real_jax.losses`, times the
jitted `value_and_grad` with respect to `logp` (after warm-up, median of
`--repeats`). In the same run it measures the machine's memory bandwidth (a
jitted sum over a 512 MiB array) and reports each loss's effective bandwidth:
the bytes of `logp`, `old_logp` and `mask` read once, divided by the time.
When PyTorch is installed
(`pip install torch==2.13.0`, the `bench` extra), a PyTorch implementation of
REAL that follows the official code's algorithm step by step (sort rollouts
by prompt id, reshape to groups, masked_fill, logsumexp with a zero column,
autograd backward), with the ratio of its time to ours.
"""

from __future__ import annotations

import os

from _common import TORCH_TIMERS
from _common import losses_table

# Run as a script, the benchmarks folder is on sys.path: its helper imports by name.
from _common import make_batch
from _common import median_time
from _common import memory_bandwidth
from _common import write_json_and_table
from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from real_jax import losses

_SHAPES = flags.DEFINE_list("shapes", ["64x8x1024", "256x8x4096"], "B x G x T batches.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed repetitions (median reported).")
_LOSSES = flags.DEFINE_list("losses", sorted(losses.LOSSES), "Losses to time.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file, and their Markdown table beside it (.md).")


def main(argv):
  del argv
  try:
    import torch  # noqa: PLC0415
    torch.set_num_threads(os.cpu_count() or 1)
  except ImportError:
    torch = None
  repeats = _REPEATS.value
  bandwidth = memory_bandwidth(repeats)
  device = jax.devices()[0]
  print(f"device: {device.device_kind} ({os.cpu_count()} CPUs), JAX {jax.__version__}"
        + (f", PyTorch {torch.__version__}" if torch else ", PyTorch not installed"))
  print(f"memory bandwidth (jitted sum over 512 MiB): {bandwidth:.1f} GB/s\n")
  header = (f"{'shape B x G x T':<18}{'loss':<14}{'jax fwd+grad':>14}{'eff. GB/s':>11}{'% of bw':>9}"
            f"{'torch f+b':>11}{'torch/jax':>11}")
  print(header)
  print("-" * len(header))
  rows = []
  for shape in _SHAPES.value:
    B, G, T = (int(v) for v in shape.split("x"))
    logp, old, mask, rewards = make_batch(B, G, T)
    args = tuple(map(jnp.asarray, (logp, old, mask, rewards)))
    read_bytes = logp.nbytes + old.nbytes + mask.nbytes
    for name in _LOSSES.value:
      fn = losses.get(name)
      step = jax.jit(jax.value_and_grad(lambda lp, o, m, r, fn=fn: fn(lp, o, m, r)[0]))
      t_jax = median_time(lambda step=step, args=args: jax.block_until_ready(step(*args)), repeats)
      row = {"shape": shape, "loss": name, "jax_s": t_jax, "effective_GBps": read_bytes / t_jax / 1e9,
             "fraction_of_bandwidth": read_bytes / t_jax / 1e9 / bandwidth}
      if torch is not None and name in TORCH_TIMERS:
        t_torch = TORCH_TIMERS[name](torch, (logp, old, mask, rewards), "cpu", repeats)
        row.update(torch_s=t_torch, torch_over_jax=t_torch / t_jax)
      rows.append(row)
      torch_cols = (f"{row['torch_s'] * 1e3:>9.1f}ms{row['torch_over_jax']:>10.1f}x"
                    if "torch_s" in row else f"{'-':>11}{'-':>11}")
      print(f"{shape:<18}{name:<14}{t_jax * 1e3:>12.2f}ms{row['effective_GBps']:>11.1f}"
            f"{100 * row['fraction_of_bandwidth']:>8.0f}%"
            + torch_cols)
  if _JSON.value:
    write_json_and_table(_JSON.value, {
        "device": device.device_kind, "cpu_count": os.cpu_count(), "jax": jax.__version__,
        "torch": getattr(torch, "__version__", None), "bandwidth_GBps": bandwidth,
        "rows": rows}, losses_table)

if __name__ == "__main__":
  app.run(main)
