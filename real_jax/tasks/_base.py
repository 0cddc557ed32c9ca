"""Verifiable tasks: a character tokenizer, seeded prompt streams, strict verifiers.

A task turns a problem into a fixed-width prompt such as `"012+345="` and
verifies a response: reward 1 only for the exact answer followed by the end
token, 0 for anything else (wrong, malformed, truncated), never an exception.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

import numpy as np

PAD, BOS, EOS = 0, 1, 2
_SPECIALS = ("<pad>", "<bos>", "<eos>")


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
  """Characters of `alphabet` after the special tokens PAD=0, BOS=1, EOS=2."""
  alphabet: str

  @property
  def vocab_size(self) -> int:
    return len(_SPECIALS) + len(self.alphabet)

  def encode(self, text: str) -> list[int]:
    try:
      return [len(_SPECIALS) + self.alphabet.index(c) for c in text]
    except ValueError:
      bad = sorted(set(text) - set(self.alphabet))
      raise ValueError(f"`text` has characters outside the alphabet: {bad}") from None

  def decode(self, ids: Sequence[int]) -> str:
    """Text up to (not including) the first EOS; specials other than EOS become '?'."""
    out = []
    for i in ids:
      i = int(i)
      if i == EOS:
        break
      j = i - len(_SPECIALS)
      out.append(self.alphabet[j] if 0 <= j < len(self.alphabet) else "?")
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class Batch:
  """Prompts `[N, P]` (BOS + fixed-width text) and their answers."""
  prompts: np.ndarray
  answers: tuple[str, ...]


class Task(abc.ABC):
  """A verifiable task with disjoint, seeded train and held-out streams."""

  name: str
  tokenizer: CharTokenizer
  prompt_len: int      # tokens, BOS included
  max_response: int    # tokens, EOS included

  @abc.abstractmethod
  def problem(self, rng: np.random.Generator) -> tuple[str, str]:
    """One `(prompt text, answer text)`; any problem, either split."""

  @abc.abstractmethod
  def is_held_out(self, prompt: str) -> bool:
    """The split rule: a pure function of the problem, so the splits never overlap."""

  def batch(self, seed: int, index: int, n: int, split: str = "train") -> Batch:
    """Prompts number `index` of the `split` stream of `seed`: the same every time."""
    if split not in ("train", "eval"):
      raise ValueError(f"`split` must be 'train' or 'eval', got {split!r}.")
    rng = np.random.default_rng([seed, index, 0 if split == "train" else 1])
    texts, answers = [], []
    while len(texts) < n:
      prompt, answer = self.problem(rng)
      if self.is_held_out(prompt) == (split == "eval"):
        texts.append(prompt)
        answers.append(answer)
    ids = np.array([[BOS] + self.tokenizer.encode(t) for t in texts], np.int32)
    return Batch(ids, tuple(answers))

  def demonstration(self, prompt_text: str, answer: str) -> list[int]:
    """Full token sequence of a correct episode (for the supervised warm start)."""
    return [BOS] + self.tokenizer.encode(prompt_text + answer) + [EOS]

  def reward(self, response: Sequence[int], answer: str) -> float:
    """1.0 for exactly `answer` then EOS within `max_response` tokens, else 0.0."""
    ids = [int(i) for i in response][: self.max_response]
    if EOS not in ids:
      return 0.0  # truncated
    text = self.tokenizer.decode(ids)
    return float(text == answer)

  def rewards(self, responses: np.ndarray, answers: Sequence[str]) -> np.ndarray:
    return np.array([self.reward(r, a) for r, a in zip(responses, answers)], np.float32)


class Addition(Task):
  """`a+b=` with `digits`-digit operands, zero-padded: `"042+917="` -> `"959"`."""

  def __init__(self, digits: int = 3):
    if digits < 1:
      raise ValueError(f"`digits` must be >= 1, got {digits}.")
    self.name = f"addition{digits}"
    self.digits = digits
    self.tokenizer = CharTokenizer("0123456789+*=")
    self.prompt_len = 1 + 2 * digits + 2
    self.max_response = digits + 2  # answer (up to digits+1) and EOS

  def problem(self, rng):
    a, b = (int(x) for x in rng.integers(0, 10**self.digits, 2))
    return f"{a:0{self.digits}d}+{b:0{self.digits}d}=", str(a + b)

  def is_held_out(self, prompt):
    # One problem in ten, by a hash of its text: disjoint and stable.
    return _stable_hash(prompt) % 10 == 0


class Multiplication(Task):
  """`a*b=` with a `digits_a`-digit and a `digits_b`-digit operand: harder than addition."""

  def __init__(self, digits_a: int = 2, digits_b: int = 1):
    if min(digits_a, digits_b) < 1:
      raise ValueError("`digits_a` and `digits_b` must be >= 1.")
    self.name = f"multiplication{digits_a}x{digits_b}"
    self.digits_a, self.digits_b = digits_a, digits_b
    self.tokenizer = CharTokenizer("0123456789+*=")
    self.prompt_len = 1 + digits_a + 1 + digits_b + 1
    self.max_response = digits_a + digits_b + 1

  def problem(self, rng):
    a = int(rng.integers(0, 10**self.digits_a))
    b = int(rng.integers(0, 10**self.digits_b))
    return f"{a:0{self.digits_a}d}*{b:0{self.digits_b}d}=", str(a * b)

  def is_held_out(self, prompt):
    return _stable_hash(prompt) % 10 == 0


def _stable_hash(text: str) -> int:
  h = 2166136261  # FNV-1a: Python's hash() is salted per process
  for c in text.encode():
    h = ((h ^ c) * 16777619) & 0xFFFFFFFF
  return h


TASKS = {"addition": Addition, "multiplication": Multiplication}


def get_task(name: str, **kwargs) -> Task:
  try:
    return TASKS[name](**kwargs)
  except KeyError:
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}.") from None
