"""The autodiff side: `jax.grad` of the batched losses of `real_jax.losses`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from real_jax import losses

Array = jax.Array


def token_gradients(name: str, logp: Array, old_logp: Array, mask: Array,
                    rewards: Array, **hparams) -> Array:
  """`d loss / d logp`, `[B, G, T]`: exactly the gradient a trainer would see.

  Since `pi_old` is a constant, this is also the derivative w.r.t. the token
  log-ratios `s_{k,t} = logp - old_logp`.
  """
  fn = losses.get(name)
  return jax.grad(lambda lp: fn(lp, old_logp, mask, rewards, **hparams)[0])(logp)


def rollout_weights(name: str, logp: Array, old_logp: Array, mask: Array,
                    rewards: Array, **hparams) -> Array:
  """Autodiff `dL/dsbar_k`, `[B, G]`, for the label-based objectives.

  Each token of rollout k receives `dL/dsbar_k * mask / |o_k|`; summing over
  the tokens divides that factor back out.
  """
  g = token_gradients(name, logp, old_logp, mask, rewards, **hparams)
  return jnp.sum(jnp.where(mask != 0, g, jnp.zeros((), g.dtype)), axis=-1)
