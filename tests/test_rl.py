"""End-to-end RLVR pieces: tasks and verifiers, the sampler, the trainer, checkpoints."""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from real_jax import losses
from real_jax import model as model_lib
from real_jax import sampling
from real_jax import tasks
from real_jax import train as train_lib

EOS, BOS, PAD = tasks.EOS, tasks.BOS, tasks.PAD


# ------------------------------------------------------------------ tasks ----


class TestVerifier:
  task = tasks.Addition(2)
  enc = task.tokenizer.encode

  def test_correct(self):
    assert self.task.reward(self.enc("148") + [EOS], "148") == 1.0
    # Whatever follows EOS is ignored.
    assert self.task.reward(self.enc("12") + [EOS, 5, 7], "12") == 1.0

  def test_wrong(self):
    assert self.task.reward(self.enc("147") + [EOS], "148") == 0.0
    assert self.task.reward(self.enc("0148") + [EOS], "148") == 0.0  # leading zero
    assert self.task.reward([EOS], "148") == 0.0                     # empty answer

  def test_malformed(self):
    assert self.task.reward(self.enc("1+8") + [EOS], "9") == 0.0
    assert self.task.reward([BOS] + self.enc("9") + [EOS], "9") == 0.0
    assert self.task.reward([PAD, PAD, PAD], "9") == 0.0
    assert self.task.reward([999, -3, EOS], "9") == 0.0  # out-of-vocabulary ids never raise

  def test_truncated(self):
    assert self.task.reward(self.enc("148"), "148") == 0.0  # no EOS
    long = self.enc("1") * (self.task.max_response + 3) + [EOS]
    assert self.task.reward(long, "1" * (self.task.max_response + 3)) == 0.0

  def test_batch_of_rewards(self):
    responses = np.array([self.enc("12") + [EOS, PAD], self.enc("13") + [EOS, PAD]])
    np.testing.assert_array_equal(self.task.rewards(responses, ["12", "12"]), [1.0, 0.0])

  def test_multiplication_answers(self):
    task = tasks.Multiplication(2, 1)
    prompt, answer = task.problem(np.random.default_rng(0))
    a, b = prompt[:-1].split("*")
    assert answer == str(int(a) * int(b))
    assert task.reward(task.tokenizer.encode(answer) + [EOS], answer) == 1.0


class TestStreams:

  @pytest.mark.parametrize("task", [tasks.Addition(3), tasks.Multiplication(2, 2)])
  def test_seeded_fixed_width_and_disjoint(self, task):
    a = task.batch(0, 5, 64)
    b = task.batch(0, 5, 64)
    np.testing.assert_array_equal(a.prompts, b.prompts)
    assert a.prompts.shape == (64, task.prompt_len)
    assert not np.array_equal(a.prompts, task.batch(0, 6, 64).prompts)
    held_out = task.batch(0, 0, 256, "eval")
    train_texts = {task.tokenizer.decode(p[1:]) for i in range(20) for p in task.batch(0, i, 64).prompts}
    eval_texts = {task.tokenizer.decode(p[1:]) for p in held_out.prompts}
    assert train_texts.isdisjoint(eval_texts)
    for text, answer in zip(sorted(eval_texts)[:5], held_out.answers):
      assert task.is_held_out(text)

  def test_tokenizer_round_trip_and_errors(self):
    tok = tasks.Addition(2).tokenizer
    assert tok.decode(tok.encode("12+34=")) == "12+34="
    with pytest.raises(ValueError, match="outside the alphabet"):
      tok.encode("12-3")
    with pytest.raises(ValueError, match="unknown task 'sorting'"):
      tasks.get_task("sorting")


# ---------------------------------------------------------------- sampler ----


@pytest.fixture(scope="module")
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
                        temperature=temperature, top_p=top_p)
    logp, _ = sampling.response_logprobs(graphdef, state, r.tokens, task.prompt_len,
                                         temperature if temperature > 0 else 1.0)
    np.testing.assert_allclose(np.where(r.mask, logp, 0.0), r.logp, atol=2e-6)
    assert np.all(np.asarray(r.logp)[~np.asarray(r.mask)] == 0.0)

  @pytest.mark.parametrize("temperature", [0.0, 1.0])
  def test_kv_cache_equals_recomputing_the_prefix(self, tiny_policy, temperature):
    task, graphdef, state, prompts = tiny_policy
    kw = dict(max_new=task.max_response, temperature=temperature)
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
    r = sampling.sample(graphdef, state, prompts, jax.random.key(3), max_new=task.max_response)
    for tokens, mask in zip(np.asarray(r.response), np.asarray(r.mask)):
      n = int(mask.sum())
      assert mask[:n].all() and not mask[n:].any()   # a prefix
      if n < len(tokens) or tokens[n - 1] == EOS:
        assert tokens[n - 1] == EOS and (tokens[n:] == PAD).all()

  def test_bad_arguments(self, tiny_policy):
    task, graphdef, state, prompts = tiny_policy
    with pytest.raises(ValueError, match="`top_p`"):
      sampling.sample(graphdef, state, prompts, jax.random.key(0), max_new=2, top_p=0.0)
    with pytest.raises(ValueError, match="exceeds max_len"):
      sampling.sample(graphdef, state, prompts, jax.random.key(0), max_new=50)


# ---------------------------------------------------------------- trainer ----


def tiny_config(base_dir: str, **overrides) -> ml_collections.ConfigDict:
  from experiments.configs import addition  # noqa: PLC0415
  cfg = addition.get_config()
  cfg.task.kwargs.digits = 1
  cfg.model.width, cfg.model.depth, cfg.model.heads = 16, 1, 2
  cfg.base.update(dir=base_dir, max_steps=30, eval_every=15, eval_size=32, batch_size=32,
                  band=(0.0, 1.0))
  cfg.update(prompts_per_step=4, group_size=4, minibatches=2, steps=4, eval_every=2,
             eval_size=16, checkpoint_every=2, log_every=100)
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("base_models"))


class TestBaseModel:

  def test_build_then_reuse(self, base_dir):
    cfg = tiny_config(base_dir)
    _, params, info = train_lib.build_base_model(cfg, log=lambda _: None)
    assert info["steps"] == 15 and os.path.exists(os.path.join(train_lib.base_model_dir(cfg), "info.json"))
    _, again, info2 = train_lib.build_base_model(cfg, log=lambda _: None)
    assert info2 == info
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
      np.testing.assert_array_equal(a, b)
    # Different model config, different base model.
    other = tiny_config(base_dir)
    other.model.width = 24
    assert train_lib.base_model_dir(other) != train_lib.base_model_dir(cfg)


class TestTrainer:

  @pytest.mark.slow
  @pytest.mark.parametrize("loss", sorted(losses.LOSSES))
  def test_one_step_for_every_loss(self, base_dir, tmp_path, loss):
    cfg = tiny_config(base_dir, loss=loss, steps=1)
    result = train_lib.train(cfg, str(tmp_path), log=lambda _: None)
    metrics = train_lib.read_metrics(str(tmp_path))
    assert [m["step"] for m in metrics] == [0, 1]
    m = metrics[1]
    for key in train_lib.METRIC_KEYS + ("eval_pass_at_1",):
      assert key in m and np.isfinite(m[key]), key
    assert 0.0 <= m["reward_mean"] <= 1.0
    assert m["mixed_group_fraction"] + m["solve_all_fraction"] <= 1.0
    assert result.steps == 1
    assert os.listdir(os.path.join(str(tmp_path), "tb"))

  def test_minibatch_must_hold_whole_groups(self, base_dir, tmp_path):
    with pytest.raises(ValueError, match="must be divisible by `minibatches`"):
      train_lib.train(tiny_config(base_dir, minibatches=3), str(tmp_path))

  @pytest.mark.slow
  def test_resume_equals_uninterrupted(self, base_dir, tmp_path):
    cfg = tiny_config(base_dir, loss="real", steps=5)
    full = train_lib.read_metrics(train_lib.train(cfg, str(tmp_path / "full"), log=lambda _: None).workdir)
    # Killed after step 3: checkpoint at 2, metrics already logged for 3.
    interrupted = str(tmp_path / "interrupted")
    train_lib.train(cfg, interrupted, stop_after=3, log=lambda _: None)
    assert [m["step"] for m in train_lib.read_metrics(interrupted)] == [0, 1, 2, 3]
    lines = []
    train_lib.train(cfg, interrupted, log=lines.append)
    assert any("resumed from step 2" in line for line in lines)
    assert train_lib.read_metrics(interrupted) == full

  @pytest.mark.slow
  def test_corrupt_checkpoint_falls_back(self, base_dir, tmp_path):
    cfg = tiny_config(base_dir, loss="grpo", steps=4)
    workdir = str(tmp_path / "run")
    train_lib.train(cfg, workdir, log=lambda _: None)
    latest = os.path.join(workdir, "checkpoints", "4")
    for root, _, files in os.walk(latest):
      for name in files:
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"garbage")
    cfg.steps = 5
    lines = []
    train_lib.train(cfg, workdir, log=lines.append)
    assert any("resumed from step 2" in line for line in lines)
    assert [m["step"] for m in train_lib.read_metrics(workdir)] == [0, 1, 2, 3, 4, 5]
