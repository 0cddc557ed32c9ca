"""Autoregressive sampling of rollout groups, jit-compiled, with a KV cache.

`sample` draws the responses of `N = B * G` sequences (each prompt repeated
`G` times by the caller) in one `lax.scan`: a prefill over the prompts fills
the cache, then each step decodes one token for every sequence. Sequences stop
at EOS (kept, and in the mask) or at `max_new` tokens.

The returned log-probabilities are those of the sampled tokens under
`softmax(logits / temperature)`, the distribution the trainer's `logp` uses
too, so they serve as `old_logp`. With `top_p < 1` tokens are drawn from the
nucleus but scored under the full tempered softmax (as verl and vLLM report).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp

from real_jax import model as model_lib

__all__ = [
    "Rollout",
    "sample",
    "response_logprobs",
]

Array = jax.Array


class Rollout(NamedTuple):
  """Sampled sequences.

  Attributes:
    tokens: `[N, P + R]` prompt then response (PAD after EOS).
    response: `[N, R]` the response part.
    mask: `[N, R]` bool, True on response tokens up to and including EOS.
    logp: `[N, R]` log-probability of each sampled token under the tempered
      sampling policy (0 where masked).
  """
  tokens: Array
  response: Array
  mask: Array
  logp: Array


def _top_p_logits(logits: Array, top_p: float) -> Array:
  """Keeps the smallest set of tokens whose probability reaches `top_p`."""
  order = jnp.argsort(-logits, axis=-1)
  sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each token
  keep_sorted = before < top_p
  keep = jnp.zeros_like(keep_sorted).at[
      jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
  return jnp.where(keep, logits, -jnp.inf)


def _pick(key: Array, logits: Array, temperature: float, top_p: float) -> tuple[Array, Array]:
  """Next token and its log-probability under the tempered softmax."""
  if temperature == 0.0:
    token = jnp.argmax(logits, axis=-1)
    logz = jax.nn.log_softmax(logits, axis=-1)
  else:
    scaled = logits / temperature
    logz = jax.nn.log_softmax(scaled, axis=-1)
    drawn_from = _top_p_logits(scaled, top_p) if top_p < 1.0 else scaled
    token = jax.random.categorical(key, drawn_from, axis=-1)
  return token, jnp.take_along_axis(logz, token[:, None], axis=-1)[:, 0]


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new", "eos_id", "pad_id",
                                             "temperature", "top_p", "use_cache"))
def sample(graphdef: nnx.GraphDef, state: nnx.State, prompts: Array, key: Array, *,
           max_new: int, eos_id: int, pad_id: int, temperature: float = 1.0,
           top_p: float = 1.0, use_cache: bool = True) -> Rollout:
  """Samples up to `max_new` tokens after each prompt.

  Args:
    graphdef, state: the policy, as from `nnx.split(policy)`.
    prompts: `[N, P]` int tokens (all prompts of equal length).
    key: PRNG key.
    max_new: response length R (EOS included); `P + R <= max_len`.
    eos_id, pad_id: the tokenizer's end-of-sequence token, which ends a
      response (and is kept in its mask), and the padding written after it.
    temperature: > 0, or 0 for greedy decoding.
    top_p: nucleus mass in (0, 1].
    use_cache: False recomputes the whole prefix at every step (the
      reference the KV cache is tested and benchmarked against).
  """
  if temperature < 0:
    raise ValueError(f"`temperature` must be >= 0, got {temperature}.")
  if not 0.0 < top_p <= 1.0:
    raise ValueError(f"`top_p` must be in (0, 1], got {top_p}.")
  policy = nnx.merge(graphdef, state)
  n, p = prompts.shape
  if p + max_new > policy.cfg.max_len:
    raise ValueError(f"prompt ({p}) + `max_new` ({max_new}) exceeds max_len {policy.cfg.max_len}.")
  keys = jax.random.split(key, max_new)

  if use_cache:
    logits, cache = policy.forward_cached(prompts, 0, policy.init_cache(n))
    carry0 = (logits[:, -1], cache)

    def advance(carry, token, pos):
      _, cache = carry
      logits, cache = policy.forward_cached(token[:, None], pos, cache)
      return (logits[:, 0], cache)
  else:
    buffer = jnp.concatenate([prompts, jnp.full((n, max_new), pad_id, prompts.dtype)], axis=1)
    carry0 = (policy(prompts)[:, -1], buffer)

    def advance(carry, token, pos):
      _, buffer = carry
      buffer = jax.lax.dynamic_update_slice(buffer, token[:, None].astype(buffer.dtype), (0, pos))
      logits = policy(buffer)  # the whole prefix again; causal, so later PADs do not matter
      return (jax.lax.dynamic_index_in_dim(logits, pos, axis=1, keepdims=False), buffer)

  def step(state_, inputs):
    carry, done = state_
    key_t, i = inputs
    token, logp = _pick(key_t, carry[0], temperature, top_p)
    alive = ~done
    token = jnp.where(alive, token, pad_id).astype(prompts.dtype)
    logp = jnp.where(alive, logp, 0.0)
    done = done | (token == eos_id)
    return (advance(carry, token, p + i), done), (token, logp, alive)

  init = (carry0, jnp.zeros((n,), bool))
  _, (tokens, logp, mask) = jax.lax.scan(step, init, (keys, jnp.arange(max_new)))
  response = tokens.T
  return Rollout(jnp.concatenate([prompts, response], axis=1), response, mask.T, logp.T)


def response_logprobs(graphdef: nnx.GraphDef, state: nnx.State, tokens: Array,
                      prompt_len: int, temperature: float = 1.0) -> tuple[Array, Array]:
  """Log-probabilities and entropies of the response tokens in one forward pass.

  Args:
    tokens: `[N, P + R]`.
    prompt_len: P.
    temperature: the sampling temperature (> 0) the log-probs are taken under.

  Returns:
    `(logp, entropy)`, each `[N, R]`.
  """
  logits = model_lib.apply(graphdef, state, tokens) / temperature
  logp, entropy = model_lib.token_logprobs(logits, tokens)
  return logp[:, prompt_len - 1:], entropy[:, prompt_len - 1:]
