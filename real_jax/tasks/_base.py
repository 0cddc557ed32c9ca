"""Verifiable tasks: a character tokenizer, seeded prompt streams, strict verifiers.

A task turns a problem into a fixed-width prompt such as `"012+345="` and
verifies a response: reward 1 only for the exact answer followed by the end
token, 0 for anything else (wrong, malformed, truncated), never an exception.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

PAD, BOS, EOS = 0, 1, 2
SPLITS = ("train", "eval", "validation", "test")
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

  @property
  def special_ids(self) -> dict[str, int]:
    """The sampler's `eos_id` and `pad_id` for this task's tokenizer: `sample(..., **task.special_ids)`."""
    return {"eos_id": EOS, "pad_id": PAD}

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

  def solution(self, prompt: str, answer: str, rng: np.random.Generator) -> str:
    """The response text of a correct demonstration (the supervised warm start's data).

    The answer itself here; a task whose solutions vary (in length, say) draws
    one from `rng`.
    """
    del prompt, rng
    return answer

  def demonstration(self, prompt_text: str, answer: str,
                    rng: np.random.Generator | None = None) -> list[int]:
    """Full token sequence of a correct episode: BOS, prompt, `solution`, EOS."""
    response = self.solution(prompt_text, answer, rng or np.random.default_rng(0))
    return [BOS] + self.tokenizer.encode(prompt_text + response) + [EOS]

  def reward(self, response: Sequence[int], answer: str) -> float:
    """1.0 for exactly `answer` then EOS within `max_response` tokens, else 0.0."""
    ids = [int(i) for i in response][: self.max_response]
    if EOS not in ids:
      return 0.0  # truncated
    text = self.tokenizer.decode(ids)
    return float(text == answer)

  def rewards(self, responses: np.ndarray, answers: Sequence[str]) -> np.ndarray:
    return np.array([self.reward(r, a) for r, a in zip(responses, answers, strict=True)], np.float32)


class ArithmeticTask(Task):
  """`a <op> b =` with zero-padded operands, in NumPy and, for whole-run jit, in JAX.

  `jax_problems` and `jax_rewards` are the array forms of `batch` and
  `reward`: the same prompt format, the same held-out rule (the FNV-1a hash of
  the prompt text) and the same verdicts, tested against each other.
  """
  op: str
  digits_a: int
  digits_b: int

  def __init__(self, digits_a: int, digits_b: int):
    if min(digits_a, digits_b) < 1:
      raise ValueError(f"operand digits must be >= 1, got {digits_a} and {digits_b}.")
    self.digits_a, self.digits_b = digits_a, digits_b
    self.tokenizer = CharTokenizer("0123456789+*=")
    self.prompt_len = 1 + digits_a + 1 + digits_b + 1
    self.max_response = self.answer_digits + 1  # the answer and EOS

  @property
  def answer_digits(self) -> int:
    return len(str(self._apply(10**self.digits_a - 1, 10**self.digits_b - 1)))

  def _apply(self, a, b):
    return a + b if self.op == "+" else a * b

  def problem(self, rng):
    a = int(rng.integers(0, 10**self.digits_a))
    b = int(rng.integers(0, 10**self.digits_b))
    return f"{a:0{self.digits_a}d}{self.op}{b:0{self.digits_b}d}=", str(self._apply(a, b))

  def is_held_out(self, prompt):
    # One problem in ten, by a hash of its text: disjoint and stable.
    return _stable_hash(prompt) % 10 == 0

  def held_out_part(self, prompt: str) -> str | None:
    """`"validation"` or `"test"` for a held-out problem (half each, by the hash), else None.

    Model selection reads only the validation half and reports only the test
    half, so the two never share a problem.
    """
    h = _stable_hash(prompt)
    if h % 10:
      return None
    return "validation" if (h // 10) % 2 == 0 else "test"

  # --------------------------------------------------------------- in JAX ----

  def jax_problems(self, key: jax.Array, n: int, split: str = "train"):
    """`(prompts [n, P], targets [n, R], target_len [n])` drawn in JAX.

    `targets` holds the answer tokens, EOS, then PAD; `target_len` counts the
    answer and EOS. Candidates of the other split are rejected, as in `batch`.
    `split` is `"train"`, `"eval"` (every held-out problem), or one of its two
    disjoint halves, `"validation"` and `"test"` (see `held_out_part`).
    """
    if split not in SPLITS:
      raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    # P(held out) = 1/10 (1/20 for a half): with these many candidates, fewer
    # than n usable ones would take a deviation of many standard deviations.
    m = {"train": 4 * n, "eval": 20 * n + 200}.get(split, 40 * n + 400)
    ka, kb = jax.random.split(key)
    a = jax.random.randint(ka, (m,), 0, 10**self.digits_a)
    b = jax.random.randint(kb, (m,), 0, 10**self.digits_b)
    chars = jnp.concatenate([_digit_chars(a, self.digits_a),
                             jnp.full((m, 1), ord(self.op), jnp.int32),
                             _digit_chars(b, self.digits_b),
                             jnp.full((m, 1), ord("="), jnp.int32)], axis=1)
    h = _fnv1a(chars)
    held = h % 10 == 0
    half = (h // 10) % 2 == 0
    wanted = {"train": ~held, "eval": held, "validation": held & half,
              "test": held & ~half}[split]
    pick = jnp.argsort(~wanted, stable=True)[:n]
    offset = len(_SPECIALS)
    lut = np.zeros(128, np.int32)  # ASCII code -> token id
    for i, ch in enumerate(self.tokenizer.alphabet):
      lut[ord(ch)] = offset + i
    prompts = jnp.concatenate([jnp.full((n, 1), BOS, jnp.int32), jnp.asarray(lut)[chars[pick]]], axis=1)
    value = self._apply(a[pick], b[pick])
    length = 1 + sum((value >= 10**k).astype(jnp.int32) for k in range(1, self.answer_digits))
    pos = jnp.arange(self.max_response)[None, :]
    power = 10 ** jnp.clip(length[:, None] - 1 - pos, 0, None)
    digit = offset + (value[:, None] // power) % 10
    targets = jnp.where(pos < length[:, None], digit, jnp.where(pos == length[:, None], EOS, PAD))
    return prompts, targets.astype(jnp.int32), length + 1

  def jax_rewards(self, responses: jax.Array, targets: jax.Array, target_len: jax.Array) -> jax.Array:
    """1.0 where the response equals the answer then EOS (what follows is ignored)."""
    pos = jnp.arange(responses.shape[-1])[None, :]
    match = (responses == targets) | (pos >= target_len[:, None])
    return jnp.all(match, axis=-1).astype(jnp.float32)


class Addition(ArithmeticTask):
  """`a+b=` with `digits`-digit operands, zero-padded: `"042+917="` -> `"959"`."""
  op = "+"

  def __init__(self, digits: int = 3):
    if digits < 1:
      raise ValueError(f"`digits` must be >= 1, got {digits}.")
    super().__init__(digits, digits)
    self.name = f"addition{digits}"
    self.digits = digits


class Multiplication(ArithmeticTask):
  """`a*b=` with a `digits_a`-digit and a `digits_b`-digit operand: harder than addition."""
  op = "*"

  def __init__(self, digits_a: int = 2, digits_b: int = 1):
    super().__init__(digits_a, digits_b)
    self.name = f"multiplication{digits_a}x{digits_b}"


def _digit_chars(x: jax.Array, width: int) -> jax.Array:
  """ASCII codes of `x` zero-padded to `width` digits, `[n] -> [n, width]`."""
  powers = 10 ** jnp.arange(width - 1, -1, -1)
  return (ord("0") + (x[:, None] // powers[None, :]) % 10).astype(jnp.int32)


def _fnv1a(chars: jax.Array) -> jax.Array:
  """FNV-1a of each row of ASCII codes, in uint32 (as `_stable_hash`)."""
  h = jnp.full(chars.shape[:1], 2166136261, jnp.uint32)
  for i in range(chars.shape[1]):
    h = (h ^ chars[:, i].astype(jnp.uint32)) * jnp.uint32(16777619)
  return h


def _stable_hash(text: str) -> int:
  h = 2166136261  # FNV-1a: Python's hash() is salted per process
  for c in text.encode():
    h = ((h ^ c) * 16777619) & 0xFFFFFFFF
  return h
