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


def _nucleus(logits: np.ndarray, top_p: float) -> set[int]:
  """NumPy: the most probable tokens up to and including the one that reaches `top_p`."""
  probs = np.exp(logits - logits.max())
  probs /= probs.sum()
  order = np.argsort(-probs, kind="stable")
  above = np.cumsum(probs[order]) - probs[order]
  return set(order[above < top_p].tolist())


class TestNucleusBothWays:
  """Top-p keeps the nucleus, all of it, and every token in it can be drawn."""

  @pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.8, 0.95, 0.999])
  def test_the_kept_set_is_exactly_the_nucleus(self, top_p):
    logits = np.random.default_rng(3).normal(0.0, 2.0, (64, 16)).astype(np.float32)
    kept = np.isfinite(np.asarray(sampling._top_p_logits(jnp.asarray(logits), top_p)))
    sizes = []
    for row, keep in zip(logits, kept, strict=True):
      assert set(np.flatnonzero(keep).tolist()) == _nucleus(row.astype(np.float64), top_p)
      sizes.append(keep.sum())
    # Both ends reached over the rows: a single token, and more than one.
    if top_p == 0.05:
      assert min(sizes) == 1
    if top_p >= 0.8:
      assert max(sizes) > 1

  @pytest.mark.parametrize("top_p, size", [(0.25, 1), (0.5, 2), (0.75, 3), (0.76, 4), (1.0, 4)])
  def test_a_mass_reached_exactly_takes_no_further_token(self, top_p, size):
    # Four equal tokens: the masses before each, 0, 1/4, 1/2, 3/4, are exact
    # in binary, so a nucleus that reaches top_p exactly is seen to stop there.
    kept = np.isfinite(np.asarray(sampling._top_p_logits(jnp.zeros((1, 4)), top_p)))
    assert kept.sum() == size == len(_nucleus(np.zeros(4), top_p))

  def test_every_token_of_the_nucleus_is_drawn_at_its_renormalised_rate(self):
    logits = jnp.log(jnp.asarray([[0.30, 0.25, 0.20, 0.15, 0.06, 0.04]]))
    n = 40_000
    keys = jax.random.split(jax.random.key(0), n)
    tokens, logp = jax.vmap(lambda k: sampling._pick(k, logits, 1.0, 0.85))(keys)
    tokens = np.asarray(tokens)[:, 0]
    counts = np.bincount(tokens, minlength=6)
    nucleus = np.array([0.30, 0.25, 0.20, 0.15]) / 0.90  # 0.30+0.25+0.20 = 0.75 < 0.85
    assert counts[4:].sum() == 0
    np.testing.assert_allclose(counts[:4] / n, nucleus, atol=0.01)
    # The log-probability returned is the untruncated policy's (what pi_old is).
    np.testing.assert_allclose(np.asarray(logp)[:, 0], np.log([0.30, 0.25, 0.20, 0.15])[tokens],
                               rtol=1e-5)
