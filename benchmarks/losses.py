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

import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

# Run as a script, the benchmarks folder is on sys.path: its helper imports by name.
from _common import median_time
from real_jax import losses

_SHAPES = flags.DEFINE_list("shapes", ["64x8x1024", "256x8x4096"], "B x G x T batches.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed repetitions (median reported).")
_LOSSES = flags.DEFINE_list("losses", sorted(losses.LOSSES), "Losses to time.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")


def memory_bandwidth(repeats: int) -> float:
  """GB/s of a jitted float32 sum over 512 MiB: the read rate this machine sustains."""
  x = jnp.ones((128 * 1024 * 1024,), jnp.float32)
  total = jax.jit(jnp.sum)
  seconds = median_time(lambda: total(x).block_until_ready(), repeats)
  return x.nbytes / seconds / 1e9


def make_batch(B: int, G: int, T: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  old = rng.normal(-1.0, 0.5, (B, G, T)).astype(np.float32)
  logp = (old + 0.1 * rng.normal(size=(B, G, T))).astype(np.float32)
  lengths = rng.integers(T // 2, T + 1, (B, G))
  mask = np.arange(T)[None, None, :] < lengths[..., None]
  rewards = (rng.random((B, G)) < 0.5).astype(np.float32)
  return logp, old, mask, rewards


# ------------------------------------------------------------- PyTorch ----


def torch_real(torch):
  """REAL as the official code computes it, step by step, with autograd."""

  def loss_and_backward(logp, old_logp, mask, rewards, uid, group_size, tau=0.5):
    logp.grad = None
    order = torch.argsort(uid, stable=True)  # sort rollouts by prompt id
    lp, olp, m, r = logp[order], old_logp[order], mask[order], rewards[order]
    s = ((lp - olp) * m).sum(-1) / m.sum(-1).clamp(min=1)
    s, r = s.view(-1, group_size), r.view(-1, group_size)  # reshape to groups
    pos, neg = r > 0.5, r <= 0.5
    valid = pos.any(1) & neg.any(1)
    zero = torch.zeros(s.shape[0], 1, dtype=s.dtype)
    pos_logits = (-s / tau).masked_fill(~pos, float("-inf"))
    neg_logits = (s / tau).masked_fill(~neg, float("-inf"))
    group = (torch.logsumexp(torch.cat([pos_logits, zero], 1), 1)
             + torch.logsumexp(torch.cat([neg_logits, zero], 1), 1))
    loss = (group * valid).sum() / s.shape[0]
    loss.backward()
    return loss

  return loss_and_backward


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
      t_jax = median_time(lambda: jax.block_until_ready(step(*args)), repeats)
      row = {"shape": shape, "loss": name, "jax_s": t_jax, "effective_GBps": read_bytes / t_jax / 1e9,
             "fraction_of_bandwidth": read_bytes / t_jax / 1e9 / bandwidth}
      if torch is not None and name == "real":
        lp_t = torch.tensor(logp.reshape(B * G, T), requires_grad=True)
        olp_t, m_t = torch.tensor(old.reshape(B * G, T)), torch.tensor(mask.reshape(B * G, T).astype(np.float32))
        r_t = torch.tensor(rewards.reshape(-1))
        uid = torch.tensor(np.random.default_rng(1).permutation(np.repeat(np.arange(B), G)))
        # Rows are shuffled by prompt id, as a rollout buffer arrives; the official code sorts.
        real_t = torch_real(torch)
        t_torch = median_time(lambda: real_t(lp_t, olp_t, m_t, r_t, uid, G), repeats)
        row.update(torch_s=t_torch, torch_over_jax=t_torch / t_jax)
      rows.append(row)
      torch_cols = (f"{row['torch_s'] * 1e3:>9.1f}ms{row['torch_over_jax']:>10.1f}x"
                    if "torch_s" in row else f"{'-':>11}{'-':>11}")
      print(f"{shape:<18}{name:<14}{t_jax * 1e3:>12.2f}ms{row['effective_GBps']:>11.1f}"
            f"{100 * row['fraction_of_bandwidth']:>8.0f}%"
            + torch_cols)
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump({"device": device.device_kind, "cpu_count": os.cpu_count(), "jax": jax.__version__,
                 "torch": getattr(torch, "__version__", None), "bandwidth_GBps": bandwidth,
                 "rows": rows}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
