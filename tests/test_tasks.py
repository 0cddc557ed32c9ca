"""Verifiable tasks: the verifier, the seeded streams, and the JAX forms against the Python ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import tasks
from real_jax.tasks._chain import chain_text

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

  def test_demonstration_is_bos_prompt_solution_eos(self):
    assert self.task.demonstration("12+34=", "46") == [BOS] + self.enc("12+34=46") + [EOS]
    chain = tasks.ChainAddition(2, chain_fraction=1.0)
    got = chain.demonstration("12+34=", "46", np.random.default_rng(0))
    assert got == [BOS] + chain.tokenizer.encode("12+34=" + chain_text(12, 34, 2)) + [EOS]

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


class TestSplitsCoverEveryProblem:
  """Both directions of the split rule, over a task small enough to list.

  Each split draws only its own problems (nothing leaks), and every problem of
  it is drawn (nothing is unreachable: operands span 0 to 10**d - 1 on both
  sides, and no valid problem is rejected), in the Python and the JAX stream.
  """

  @staticmethod
  def every_problem(task):
    return {f"{a:0{task.digits_a}d}{task.op}{b:0{task.digits_b}d}="
            for a in range(10**task.digits_a) for b in range(10**task.digits_b)}

  @staticmethod
  def texts(task, prompts):
    return {task.tokenizer.decode(p[1:]) for p in np.asarray(prompts)}

  @pytest.mark.parametrize("task", [tasks.Addition(1), tasks.Multiplication(1, 1)])
  def test_python_stream(self, task):
    problems = self.every_problem(task)
    held = {p for p in problems if task.is_held_out(p)}
    assert 0 < len(held) < len(problems)
    train = set().union(*(self.texts(task, task.batch(0, i, 128).prompts) for i in range(8)))
    assert train == problems - held
    assert self.texts(task, task.batch(0, 0, 256, "eval").prompts) == held

  @pytest.mark.parametrize("task", [tasks.Addition(1), tasks.Multiplication(1, 1)])
  def test_jax_stream(self, task):
    problems = self.every_problem(task)
    part = {p: task.held_out_part(p) for p in problems}
    want = {"train": {p for p, h in part.items() if h is None},
            "eval": {p for p, h in part.items() if h is not None},
            "validation": {p for p, h in part.items() if h == "validation"},
            "test": {p for p, h in part.items() if h == "test"}}
    assert all(want.values())  # every split has problems to draw
    for split, n in (("train", 1024), ("eval", 256), ("validation", 256), ("test", 256)):
      prompts, _, _ = task.jax_problems(jax.random.key(3), n, split)
      assert self.texts(task, prompts) == want[split], split


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


class TestChainAddition:
  """Chain-of-thought responses of varying length, rewarded on their final value only."""

  task = tasks.ChainAddition(2)
  enc = task.tokenizer.encode

  def test_chain_by_hand(self):
    assert tasks.ChainAddition(3).solution("999+001=", "1000", _AlwaysChain()) == (
        "9+1=10,9+0+1=10,9+0+1=10:1000")
    assert self.task.solution("47+85=", "132", _AlwaysChain()) == "7+5=12,4+8+1=13:132"
    assert self.task.solution("47+85=", "132", np.random.default_rng(0)) in (
        "132", "7+5=12,4+8+1=13:132")

  def test_final_value_decides(self):
    r = self.task.reward
    assert r(self.enc("7+5=12,4+8+1=13:132") + [EOS], "132") == 1.0
    assert r(self.enc("132") + [EOS], "132") == 1.0                 # direct
    assert r(self.enc("7+5=99,1:2:132") + [EOS, 4, 4], "132") == 1.0  # a wrong chain, the last ":"
    assert r(self.enc("7+5=12,4+8+1=13:131") + [EOS], "132") == 0.0
    assert r(self.enc("7+5=12,4+8+1=13:132"), "132") == 0.0        # truncated
    assert r(self.enc("7+5=12,4+8+1=13,132") + [EOS], "132") == 0.0  # no ":" before the value
    assert r(self.enc("132:") + [EOS], "132") == 0.0                 # empty final value
    assert r(self.enc(":0132") + [EOS], "132") == 0.0                # leading zero

  def test_lengths_span_a_factor_of_four(self):
    rng = np.random.default_rng(1)
    batch = self.task.batch(0, 0, 512)
    lengths = [len(self.task.solution(self.task.tokenizer.decode(p[1:]), a, rng)) + 1
               for p, a in zip(batch.prompts, batch.answers, strict=True)]
    assert min(lengths) <= 4 and max(lengths) >= 16 and max(lengths) <= self.task.max_response
    assert self.task.max_response == len("9+9=18,9+9+1=19:198") + 1
    chained = np.mean([n > 4 for n in lengths])
    assert 0.4 < chained < 0.6  # chain_fraction 0.5
    assert all(len(tasks.ChainAddition(2, chain_fraction=0.0).solution("47+85=", "132", rng))
               == 3 for _ in range(20))

  def test_prompts_and_splits_are_additions(self):
    for split in ("train", "eval"):
      a = self.task.batch(3, 1, 32, split)
      b = tasks.Addition(2).batch(3, 1, 32, split)
      assert a.answers == b.answers
      assert [self.task.tokenizer.decode(p[1:]) for p in a.prompts] == [
          tasks.Addition(2).tokenizer.decode(p[1:]) for p in b.prompts]

  def test_array_verifier_is_the_string_verifier(self):
    # Responses built from the pieces a policy could emit: correct and wrong
    # chains and answers, stray marks, PAD and BOS, cut short or not.
    task, rng = self.task, np.random.default_rng(0)
    prompts, targets, length = task.jax_problems(jax.random.key(2), 64, "train")
    answers = [str(int(t[1:3]) + int(t[4:6])) for t in
               (task.tokenizer.decode(p) for p in np.asarray(prompts))]
    responses, wanted, rows = [], [], []
    pieces = ["7+5=12,", "4+8+1=13", ":", ",", "1", "0", "=", "+"]
    for i, answer in enumerate(answers):
      for _ in range(8):
        text = "".join(rng.choice(pieces) for _ in range(rng.integers(0, 4)))
        if rng.random() < 0.6:
          text += ":" if rng.random() < 0.7 else ""
          text += answer if rng.random() < 0.6 else str(int(answer) + rng.integers(-2, 3))
        ids = task.tokenizer.encode(text)[: task.max_response]
        if rng.random() < 0.85 and len(ids) < task.max_response:
          ids.append(EOS)
        ids += [int(rng.choice([PAD, PAD, BOS, 5]))] * (task.max_response - len(ids))
        if rng.random() < 0.05:
          ids[rng.integers(0, len(ids))] = PAD
        responses.append(ids)
        wanted.append(task.reward(ids, answer))
        rows.append(i)
    rows = np.asarray(rows)
    got = jax.jit(task.jax_rewards)(jnp.asarray(responses, jnp.int32), targets[rows], length[rows])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(wanted, np.float32))
    assert 0.2 < np.mean(wanted) < 0.8  # both verdicts are exercised

  def test_bad_arguments(self):
    with pytest.raises(ValueError, match="`digits`"):
      tasks.ChainAddition(0)
    with pytest.raises(ValueError, match="`chain_fraction`"):
      tasks.ChainAddition(2, chain_fraction=1.5)
    assert tasks.get_task("chain_addition", digits=3).max_response == len(
        chain_text(999, 999, 3)) + 1


class _AlwaysChain:
  """A stand-in generator whose draw always picks the chain (`random()` below any fraction)."""

  @staticmethod
  def random():
    return 0.0


@pytest.mark.parametrize("task, largest", [
    (tasks.Addition(1), 9 + 9), (tasks.Addition(3), 999 + 999),
    (tasks.Multiplication(2, 1), 99 * 9), (tasks.Multiplication(2, 2), 99 * 99),
    (tasks.Multiplication(3, 2), 999 * 99)])
def test_answer_digits_fit_the_largest_answer_exactly(task, largest):
  # Wide enough for the largest answer, and no wider (a wider response is a
  # longer rollout for every prompt).
  assert task.answer_digits == len(str(largest))
  assert task.max_response == task.answer_digits + 1


@pytest.mark.parametrize("task, digits", [
    (tasks.get_task("multiplication"), (2, 1)),  # the default: 2-digit times 1-digit
    (tasks.get_task("addition"), (3, 3)),
    (tasks.Multiplication(1, 2), (1, 2)), (tasks.Addition(2), (2, 2))])
def test_operands_span_every_value_their_digits_allow(task, digits):
  # Both directions: no operand outside 0 .. 10**d - 1, and every one of them
  # drawn, on each side of the operator.
  assert (task.digits_a, task.digits_b) == digits
  rng = np.random.default_rng(0)
  drawn = [task.problem(rng)[0] for _ in range(12_000)]
  a, b = zip(*(p[:-1].split(task.op) for p in drawn), strict=True)
  assert {len(x) for x in a} == {digits[0]} and {len(x) for x in b} == {digits[1]}
  assert {int(x) for x in a} == set(range(10 ** digits[0]))
  assert {int(x) for x in b} == set(range(10 ** digits[1]))
