"""The KV-cached sampler: log-probs, the cache, EOS, bad arguments."""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import model as model_lib
from real_jax import sampling
from real_jax import tasks

EOS, PAD = tasks.EOS, tasks.PAD


@pytest.fixture(scope="session")
def tiny_policy():
  task = tasks.Addition(2)
  cfg = model_lib.PolicyConfig(vocab_size=task.tokenizer.vocab_size,
                               max_len=task.prompt_len + task.max_response, width=32, depth=2, heads=4)
  graphdef, state = nnx.split(model_lib.Policy(cfg, rngs=nnx.Rngs(0)))
  prompts = jnp.asarray(np.repeat(task.batch(0, 0, 4).prompts, 3, axis=0))
  return task, graphdef, state, prompts


class TestSampler:

  @pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
  def test_logprobs_equal_a_full_forward_pass(self, tiny_policy, temperature, top_p):
    task, graphdef, state, prompts = tiny_policy
    r = sampling.sample(graphdef, state, prompts, jax.random.key(1), max_new=task.max_response,
                        temperature=temperature, top_p=top_p, **task.special_ids)
    logp, _ = sampling.response_logprobs(graphdef, state, r.tokens, task.prompt_len,
                                         temperature if temperature > 0 else 1.0)
    np.testing.assert_allclose(np.where(r.mask, logp, 0.0), r.logp, atol=2e-6)
    assert np.all(np.asarray(r.logp)[~np.asarray(r.mask)] == 0.0)

  def test_top_p_draws_only_from_the_nucleus(self, tiny_policy):
    # The nucleus recomputed in NumPy from a full forward pass: the most
    # probable tokens up to and including the one that brings the mass to top_p.
    task, graphdef, state, prompts = tiny_policy
    top_p, temperature = 0.5, 1.0
    r = sampling.sample(graphdef, state, prompts, jax.random.key(4), max_new=task.max_response,
                        temperature=temperature, top_p=top_p, **task.special_ids)
    logits = np.asarray(nnx.merge(graphdef, state)(r.tokens), np.float64) / temperature
    p_len, mask, tokens = task.prompt_len, np.asarray(r.mask), np.asarray(r.tokens)
    outside, sizes = 0, []
    for n, t in zip(*np.nonzero(mask), strict=True):
      z = logits[n, p_len + t - 1]
      probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
      order = np.argsort(-probs)
      above = np.cumsum(probs[order]) - probs[order]
      nucleus = set(order[above < top_p])
      sizes.append(len(nucleus))
      outside += tokens[n, p_len + t] not in nucleus
    assert outside == 0
    assert np.mean(sizes) < 0.5 * logits.shape[-1]  # a real restriction, not the vocabulary

  @pytest.mark.parametrize("temperature", [0.0, 1.0])
  def test_kv_cache_equals_recomputing_the_prefix(self, tiny_policy, temperature):
    task, graphdef, state, prompts = tiny_policy
    kw = dict(max_new=task.max_response, temperature=temperature, **task.special_ids)
    cached = sampling.sample(graphdef, state, prompts, jax.random.key(2), **kw)
    plain = sampling.sample(graphdef, state, prompts, jax.random.key(2), use_cache=False, **kw)
    np.testing.assert_array_equal(cached.tokens, plain.tokens)
    np.testing.assert_allclose(cached.logp, plain.logp, atol=2e-6)

  def test_cached_logits_equal_full_forward(self, tiny_policy):
    _, graphdef, state, prompts = tiny_policy
    policy = nnx.merge(graphdef, state)
    full = policy(prompts)
    prefix, cache = policy.forward_cached(prompts[:, :4], 0, policy.init_cache(prompts.shape[0]))
    rest = []
    for pos in range(4, prompts.shape[1]):
      out, cache = policy.forward_cached(prompts[:, pos:pos + 1], pos, cache)
      rest.append(out)
    np.testing.assert_allclose(jnp.concatenate([prefix] + rest, axis=1), full, atol=2e-5)

  def test_stops_at_eos(self, tiny_policy):
    task, graphdef, state, prompts = tiny_policy
    r = sampling.sample(graphdef, state, prompts, jax.random.key(3), max_new=task.max_response,
                        **task.special_ids)
    for tokens, mask in zip(np.asarray(r.response), np.asarray(r.mask), strict=True):
      n = int(mask.sum())
      assert mask[:n].all() and not mask[n:].any()   # a prefix
      if n < len(tokens) or tokens[n - 1] == EOS:
        assert tokens[n - 1] == EOS and (tokens[n:] == PAD).all()

  def test_bad_arguments(self, tiny_policy):
    task, graphdef, state, prompts = tiny_policy
    with pytest.raises(ValueError, match="`top_p`"):
      sampling.sample(graphdef, state, prompts, jax.random.key(0), max_new=2, top_p=0.0,
                        **task.special_ids)
    with pytest.raises(ValueError, match="exceeds max_len"):
      sampling.sample(graphdef, state, prompts, jax.random.key(0), max_new=50, **task.special_ids)
