"""Verifiable tasks: the verifier, the seeded streams, and the JAX forms against the Python ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import tasks

EOS, BOS, PAD = tasks.EOS, tasks.BOS, tasks.PAD


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
    for text in sorted(eval_texts)[:5]:
      assert task.is_held_out(text)

  def test_tokenizer_round_trip_and_errors(self):
    tok = tasks.Addition(2).tokenizer
    assert tok.decode(tok.encode("12+34=")) == "12+34="
    with pytest.raises(ValueError, match="outside the alphabet"):
      tok.encode("12-3")
    with pytest.raises(ValueError, match="unknown task 'sorting'"):
      tasks.get_task("sorting")


class TestArrayTask:
  """The JAX forms of a task agree with its Python forms."""

  @pytest.mark.parametrize("task", [tasks.Addition(2), tasks.Multiplication(2, 2)])
  def test_problems_split_and_verdicts(self, task):
    prompts, targets, length = jax.jit(lambda k: task.jax_problems(k, 128, "train"))(
        jax.random.key(0))
    texts = [task.tokenizer.decode(p[1:]) for p in np.asarray(prompts)]
    assert not any(task.is_held_out(t) for t in texts)
    held, _, _ = task.jax_problems(jax.random.key(1), 32, "eval")
    assert all(task.is_held_out(task.tokenizer.decode(p[1:])) for p in np.asarray(held))
    rng = np.random.default_rng(0)
    for text, target, n in zip(texts, np.asarray(targets), np.asarray(length), strict=True):
      a, b = text[:-1].split(task.op)
      answer = str(int(a) + int(b) if task.op == "+" else int(a) * int(b))
      assert n == len(answer) + 1 and task.reward(target, answer) == 1.0
      # Random corruptions: the array verifier agrees with the string verifier.
      for _ in range(4):
        response = target.copy()
        response[rng.integers(0, len(response))] = rng.integers(0, task.tokenizer.vocab_size)
        want = task.reward(response, answer)
        got = float(task.jax_rewards(jnp.asarray(response)[None], jnp.asarray(target)[None],
                                     jnp.asarray([n]))[0])
        assert got == want, (text, response, answer)
