"""Measurement helpers shared by the benchmark scripts (imported by name: run them as scripts)."""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def median_time(fn, repeats: int, warmup: int = 2) -> float:
  """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed ones."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def memory_bandwidth(repeats: int, mib: int = 512, device=None) -> float:
  """GB/s of a jitted float32 sum over `mib` MiB: the read rate this device sustains."""
  x = jax.device_put(jnp.ones((mib * 1024 * 1024 // 4,), jnp.float32), device)
  total = jax.jit(jnp.sum)
  seconds = median_time(lambda: total(x).block_until_ready(), repeats)
  return x.nbytes / seconds / 1e9


def matmul_rate(repeats: int, n: int = 2048, dtype=jnp.float32, device=None) -> float:
  """FLOP/s of an `n x n` matmul in `dtype`."""
  a = jax.device_put(jnp.ones((n, n), dtype), device)
  mm = jax.jit(lambda x: x @ x)
  seconds = median_time(lambda: mm(a).block_until_ready(), repeats)
  return 2 * n**3 / seconds


def compiled_flops(compiled) -> float:
  """XLA's own FLOP count of a compiled program (0 where the backend gives none)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", 0.0))


def make_batch(B: int, G: int, T: int, seed: int = 0):
  """A float32 `[B, G, T]` batch: `logp, old_logp, mask` (bool), `rewards` `[B, G]`."""
  rng = np.random.default_rng(seed)
  old = rng.normal(-1.0, 0.5, (B, G, T)).astype(np.float32)
  logp = (old + 0.1 * rng.normal(size=(B, G, T))).astype(np.float32)
  lengths = rng.integers(T // 2, T + 1, (B, G))
  mask = np.arange(T)[None, None, :] < lengths[..., None]
  rewards = (rng.random((B, G)) < 0.5).astype(np.float32)
  return logp, old, mask, rewards


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
    zero = torch.zeros(s.shape[0], 1, dtype=s.dtype, device=s.device)
    pos_logits = (-s / tau).masked_fill(~pos, float("-inf"))
    neg_logits = (s / tau).masked_fill(~neg, float("-inf"))
    group = (torch.logsumexp(torch.cat([pos_logits, zero], 1), 1)
             + torch.logsumexp(torch.cat([neg_logits, zero], 1), 1))
    loss = (group * valid).sum() / s.shape[0]
    loss.backward()
    return loss

  return loss_and_backward


def time_torch_real(torch, batch, device: str, repeats: int) -> float:
  """Median seconds of the official algorithm's REAL forward + backward on `device`."""
  logp, old, mask, rewards = batch
  B, G, T = logp.shape
  put = lambda a: torch.tensor(a, device=device)  # noqa: E731
  lp = torch.tensor(logp.reshape(B * G, T), device=device, requires_grad=True)
  olp, m = put(old.reshape(B * G, T)), put(mask.reshape(B * G, T).astype(np.float32))
  r = put(rewards.reshape(-1))
  # Rows arrive shuffled by prompt id, as from a rollout buffer; the official code sorts.
  uid = put(np.random.default_rng(1).permutation(np.repeat(np.arange(B), G)))
  real = torch_real(torch)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

  def run():
    real(lp, olp, m, r, uid, G)
    sync()
  return median_time(run, repeats)


def measure_update_and_sampling(width: int, depth: int, heads: int, *, sequences: int,
                                response: int, repeats: int, device=None,
                                prompt: int = 8, vocab: int = 16) -> dict:
  """Sampler tokens/s with and without the KV cache, and the RL update's time and FLOPs.

  The policy is random (throughput does not depend on what it knows); the
  update runs on one minibatch of the toy config's shape at this model size.
  """
  from flax import nnx  # noqa: PLC0415

  from real_jax import model as model_lib  # noqa: PLC0415
  from real_jax import sampling  # noqa: PLC0415
  from real_jax import tasks  # noqa: PLC0415
  from real_jax.training import config as config_lib  # noqa: PLC0415
  from real_jax.training import step as step_lib  # noqa: PLC0415
  pcfg = model_lib.PolicyConfig(vocab_size=vocab, max_len=prompt + response, width=width,
                                depth=depth, heads=heads)
  graphdef, state = nnx.split(model_lib.Policy(pcfg, rngs=nnx.Rngs(0)))
  state = jax.device_put(state, device)
  prompts = jax.device_put(
      jax.random.randint(jax.random.key(0), (sequences, prompt), 3, vocab), device)
  rates = {}
  for cached in (True, False):
    def run(c=cached):
      return jax.block_until_ready(sampling.sample(graphdef, state, prompts, jax.random.key(1),
                                                   max_new=response, use_cache=c,
                                                   eos_id=tasks.EOS, pad_id=tasks.PAD))
    rates[cached] = sequences * response / median_time(run, repeats)
  rl = config_lib.get_config()
  rl.model.update(width=width, depth=depth, heads=heads)
  optimizer = step_lib.make_optimizer(rl)
  update = step_lib.make_update(rl, graphdef, optimizer, prompt)
  b, g = rl.prompts_per_step // rl.minibatches, rl.group_size
  tokens = jax.random.randint(jax.random.key(2), (b, g, prompt + response), 3, vocab)
  old = jnp.full((b, g, response), -2.0, jnp.float32)
  mask = jnp.ones((b, g, response), bool)
  rewards = (jax.random.uniform(jax.random.key(3), (b, g)) < 0.5).astype(jnp.float32)
  opt_state = step_lib.init_state(optimizer, state, jax.random.key(0), rl.lr).opt_state
  args = jax.device_put((state, opt_state, tokens, old, mask, rewards, jnp.float32(0.5)), device)
  compiled = jax.jit(update).lower(*args).compile()
  seconds = median_time(lambda: jax.block_until_ready(compiled(*args)), repeats)
  return {"cached_tokens_per_s": rates[True], "recompute_tokens_per_s": rates[False],
          "cache_speedup": rates[True] / rates[False], "update_s": seconds,
          "update_flops": compiled_flops(compiled),
          "update_batch": f"{b} groups x {g} rollouts x {prompt + response} tokens"}


# ------------------------------------------------ the results pages' tables ----


def _markdown(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def losses_table(figures: dict) -> str:
  """`benchmarks/losses.py --json`'s figures as the Markdown table of docs/results/performance.md."""
  rows = []
  for r in figures["rows"]:
    torch = f"{r['torch_over_jax']:.1f}x" if "torch_over_jax" in r else ""
    rows.append([r["shape"], r["loss"], f"{r['jax_s'] * 1e3:.2f} ms",
                 f"{100 * r['fraction_of_bandwidth']:.0f}%", torch])
  note = (f"{figures['device']}, {figures['cpu_count']} CPUs, JAX {figures['jax']}, "
          f"PyTorch {figures.get('torch') or 'not installed'}; measured memory bandwidth "
          f"{figures['bandwidth_GBps']:.1f} GB/s.\n\n")
  return note + _markdown(["B x G x T", "loss", "JAX fwd+grad", "% of bandwidth",
                           "PyTorch (official algorithm) f+b / JAX"], rows)


def training_table(figures: dict) -> str:
  """`benchmarks/training.py --json`'s figures as the Markdown table of docs/results/performance.md."""
  rows = [[label, f"{f['cached_tokens_per_s']:,.0f} tokens/s",
           f"{f['recompute_tokens_per_s']:,.0f} tokens/s", f"{f['cache_speedup']:.1f}x",
           f"{f['update_s'] * 1e3:,.0f} ms, {f['update_GFLOPs']:.0f} GFLOP/s",
           f"{100 * f['update_fraction_of_matmul']:.0f}%"]
          for label, f in figures["sizes"].items()]
  out = (f"float32 matmul 2048^3 in the same run: {figures['matmul_GFLOPs']:.0f} GFLOP/s.\n\n"
         + _markdown(["policy", "KV-cached sampling", "recomputing the prefix", "cache speed-up",
                      "update step", "% of matmul rate"], rows))
  seeds = figures.get("vmap_seeds")
  if seeds:
    out += (f"\n{seeds['seeds']} seeds of {seeds['steps']} steps x {seeds['rollouts_per_step']} "
            f"rollouts: one seed {seeds['one_seed_s']:.2f} s, {seeds['seeds']} sequentially "
            f"{seeds['sequential_s']:.2f} s, {seeds['seeds']} in one vmapped program "
            f"{seeds['vmapped_s']:.2f} s ({seeds['vmapped_over_one_seed']:.1f}x one seed).\n")
  return out


def write_json_and_table(path: str, figures: dict, table) -> None:
  """Writes `figures` to `path` (JSON) and `table(figures)` beside it (`.md`)."""
  import json  # noqa: PLC0415
  import os  # noqa: PLC0415
  with open(path, "w") as f:
    json.dump(figures, f, indent=1)
  with open(os.path.splitext(path)[0] + ".md", "w") as f:
    f.write(table(figures))


# The objectives with a PyTorch implementation to time against: the official code's REAL.
TORCH_TIMERS = {"real": time_torch_real}
