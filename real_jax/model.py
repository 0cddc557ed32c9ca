"""A small decoder-only transformer policy in Flax NNX.

Pre-norm blocks (RMSNorm), causal multi-head self-attention with learned
positions, a GELU MLP, tied nothing: small, plain and fast to compile, for the
toy tasks and the gradient checks. `apply` is the pure functional form used
under `jax.jit`/`jax.vmap` (via `nnx.split`/`nnx.merge`).

Shape letters: `N` sequences, `L` positions, `V` vocabulary, `D` model width,
`H` heads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

__all__ = [
    "PolicyConfig",
    "Policy",
    "Block",
    "apply",
    "token_logprobs",
]

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
  vocab_size: int
  max_len: int = 64
  width: int = 64
  depth: int = 2
  heads: int = 4
  mlp_ratio: int = 4
  param_dtype: Any = jnp.float32
  dtype: Any = jnp.float32  # compute dtype (bfloat16 on TPU)

  def __post_init__(self):
    for name in ("vocab_size", "max_len", "width", "depth", "heads", "mlp_ratio"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
    if self.width % self.heads:
      raise ValueError(f"`width` ({self.width}) must be divisible by `heads` ({self.heads}).")


class Block(nnx.Module):

  def __init__(self, cfg: PolicyConfig, *, rngs: nnx.Rngs):
    d, dt, pdt = cfg.width, cfg.dtype, cfg.param_dtype
    self.heads = cfg.heads
    self.norm1 = nnx.RMSNorm(d, dtype=dt, param_dtype=pdt, rngs=rngs)
    self.qkv = nnx.Linear(d, 3 * d, use_bias=False, dtype=dt, param_dtype=pdt, rngs=rngs)
    self.out = nnx.Linear(d, d, use_bias=False, dtype=dt, param_dtype=pdt, rngs=rngs)
    self.norm2 = nnx.RMSNorm(d, dtype=dt, param_dtype=pdt, rngs=rngs)
    self.up = nnx.Linear(d, cfg.mlp_ratio * d, dtype=dt, param_dtype=pdt, rngs=rngs)
    self.down = nnx.Linear(cfg.mlp_ratio * d, d, dtype=dt, param_dtype=pdt, rngs=rngs)

  def __call__(self, x: Array, mask: Array, cache: tuple[Array, Array] | None = None,
               start: Array | int = 0) -> tuple[Array, tuple[Array, Array] | None]:
    """`x: [N, L, D]`; `mask: [N, 1, L, K]`, True where attention is allowed.

    Without a cache the keys are this call's `L` positions (K = L). With a
    cache `(k, v)`, each `[N, max_len, H, D/H]`, this call's keys and values
    are written at positions `start .. start+L-1` and the queries attend over
    all `max_len` cached positions (K = max_len); the mask hides the future.
    """
    n, length, d = x.shape
    q, k, v = jnp.split(self.qkv(self.norm1(x)), 3, axis=-1)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, d // self.heads)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    if cache is not None:
      k = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype), (0, start, 0, 0))
      v = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype), (0, start, 0, 0))
      cache = (k, v)
    att = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(d // self.heads).astype(x.dtype)
    att = jnp.where(mask, att, jnp.finfo(att.dtype).min)
    # Softmax in at least float32 (bfloat16 compute loses the tail otherwise).
    wide = jnp.promote_types(att.dtype, jnp.float32)
    att = jax.nn.softmax(att.astype(wide), axis=-1).astype(x.dtype)
    y = jnp.einsum("nhqk,nkhd->nqhd", att, v.astype(x.dtype)).reshape(n, length, d)
    x = x + self.out(y)
    return x + self.down(jax.nn.gelu(self.up(self.norm2(x)))), cache


class Policy(nnx.Module):
  """`Policy(cfg, rngs=nnx.Rngs(0))(tokens [N, L]) -> logits [N, L, V]` (at least float32)."""

  def __init__(self, cfg: PolicyConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.width, dtype=cfg.dtype,
                           param_dtype=cfg.param_dtype, rngs=rngs)
    self.pos = nnx.Embed(cfg.max_len, cfg.width, dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype, rngs=rngs)
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.depth)])
    self.norm = nnx.RMSNorm(cfg.width, dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs)
    self.head = nnx.Linear(cfg.width, cfg.vocab_size, use_bias=False, dtype=cfg.dtype,
                           param_dtype=cfg.param_dtype, rngs=rngs)

  def __call__(self, tokens: Array) -> Array:
    """Full causal forward pass: `tokens [N, L] -> logits [N, L, V]`."""
    self._check(tokens, 0)
    length = tokens.shape[1]
    x = self.embed(tokens) + self.pos(jnp.arange(length))[None]
    causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
    for block in self.blocks:
      x, _ = block(x, causal)
    return self._logits(x)

  def init_cache(self, n: int) -> list[tuple[Array, Array]]:
    """Empty key/value cache for `n` sequences of up to `max_len` tokens."""
    cfg = self.cfg
    shape = (n, cfg.max_len, cfg.heads, cfg.width // cfg.heads)
    return [(jnp.zeros(shape, cfg.dtype), jnp.zeros(shape, cfg.dtype)) for _ in range(cfg.depth)]

  def forward_cached(self, tokens: Array, start: Array | int,
                     cache: list[tuple[Array, Array]]) -> tuple[Array, list]:
    """Forward over positions `start .. start+L-1` given the cache of the earlier ones.

    Prefill with `start=0` and the prompt; decode with `L = 1`. Returns the
    logits `[N, L, V]` and the updated cache.
    """
    self._check(tokens, None)
    length, max_len = tokens.shape[1], self.cfg.max_len
    positions = start + jnp.arange(length)
    x = self.embed(tokens) + self.pos(positions)[None]
    mask = (jnp.arange(max_len)[None, :] <= positions[:, None])[None, None]
    new_cache = []
    for block, layer_cache in zip(self.blocks, cache, strict=True):
      x, layer_cache = block(x, mask, layer_cache, start)
      new_cache.append(layer_cache)
    return self._logits(x), new_cache

  def _check(self, tokens: Array, start) -> None:
    if tokens.ndim != 2:
      raise ValueError(f"`tokens` must be [N, L], got shape {tokens.shape}.")
    if start is not None and tokens.shape[1] + start > self.cfg.max_len:
      raise ValueError(f"sequence length {tokens.shape[1]} exceeds `max_len` {self.cfg.max_len}.")

  def _logits(self, x: Array) -> Array:
    logits = self.head(self.norm(x))
    return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def token_logprobs(logits: Array, tokens: Array) -> tuple[Array, Array]:
  """Log-probability and entropy of each next token.

  Args:
    logits: `[N, L, V]` for positions `0..L-1`.
    tokens: `[N, L]`.

  Returns:
    `(logp, entropy)`, each `[N, L-1]`: position `t` scores `tokens[:, t+1]`
    under `logits[:, t]`.
  """
  logz = jax.nn.log_softmax(logits[:, :-1], axis=-1)
  logp = jnp.take_along_axis(logz, tokens[:, 1:, None], axis=-1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logz) * logz, axis=-1)
  return logp, entropy


def apply(graphdef: nnx.GraphDef, state: nnx.State, tokens: Array) -> Array:
  """Pure forward pass: `nnx.merge(graphdef, state)(tokens)`."""
  return nnx.merge(graphdef, state)(tokens)
