"""Addition answered directly or through a written chain of column sums: responses of varying length.

  "47+85=" -> "132"                      (direct: 4 tokens with EOS)
           -> "7+5=12,4+8+1=13:132"      (step by step: 20 tokens with EOS)

A chain writes each column from the right as `x+y[+1]=s` (`+1` where a carry
comes in), joins the columns with `,`, then gives the final value after `:`.
The verifier is strict about the final value only, as a math verifier is: the
reward is 1 when the text after the last `:` (the whole response if it has
none), up to the first EOS, is exactly the sum, and 0 otherwise (wrong,
malformed, truncated). The chain itself is not checked.

Lengths range from 2 tokens (`0` and EOS) to `max_response` (2-digit operands:
2 to 20, a factor of 10), so length conventions (REAL's length-normalised
score, token-mean against sequence-mean aggregation, a fixed horizon) act on
different rollouts differently. The supervised warm start sees a mix of
direct and chained demonstrations (`chain_fraction`), so RL can move the
length distribution either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from real_jax.tasks._base import EOS
from real_jax.tasks._base import ArithmeticTask
from real_jax.tasks._base import CharTokenizer

__all__ = ["ChainAddition", "chain_text"]

ANSWER_MARK = ":"


def chain_text(a: int, b: int, digits: int) -> str:
  """The step-by-step response to `a + b` with `digits`-digit operands: columns, `:`, the sum.

  >>> chain_text(47, 85, 2)
  '7+5=12,4+8+1=13:132'
  >>> chain_text(3, 4, 2)
  '3+4=7,0+0=0:7'
  """
  parts, carry = [], 0
  for i in range(digits):
    x, y = (a // 10**i) % 10, (b // 10**i) % 10
    total = x + y + carry
    parts.append(f"{x}+{y}" + ("+1" if carry else "") + f"={total}")
    carry = total // 10
  return ",".join(parts) + ANSWER_MARK + str(a + b)


class ChainAddition(ArithmeticTask):
  """`a+b=` with `digits`-digit operands, answered directly or through a chain of column sums.

  Prompts, splits and the JAX prompt stream are `Addition`'s; the responses
  and the verifier differ (see the module docstring).
  """
  op = "+"

  def __init__(self, digits: int = 2, chain_fraction: float = 0.5):
    if not isinstance(digits, int) or digits < 1:
      raise ValueError(f"`digits` must be an integer >= 1, got {digits!r}.")
    if not 0.0 <= chain_fraction <= 1.0:
      raise ValueError(f"`chain_fraction` must be in [0, 1], got {chain_fraction!r}.")
    super().__init__(digits, digits)
    self.tokenizer = CharTokenizer("0123456789+*=," + ANSWER_MARK)
    self.name = f"chain_addition{digits}"
    self.digits = digits
    self.chain_fraction = chain_fraction
    biggest = 10**digits - 1
    # The longest chain: every column carries (its sum has two digits); EOS.
    self.max_response = len(chain_text(biggest, biggest, digits)) + 1

  def solution(self, prompt: str, answer: str, rng: np.random.Generator) -> str:
    """A demonstration's response: the chain with probability `chain_fraction`, else the answer."""
    if rng.random() >= self.chain_fraction:
      return answer
    a, b = (int(v) for v in prompt.rstrip("=").split(self.op))
    return chain_text(a, b, self.digits)

  def reward(self, response: Sequence[int], answer: str) -> float:
    """1.0 when the final value (after the last `:`, before EOS) is exactly `answer`, else 0.0."""
    ids = [int(i) for i in response][: self.max_response]
    if EOS not in ids:
      return 0.0  # truncated
    final = self.tokenizer.decode(ids).rsplit(ANSWER_MARK, 1)[-1]
    return float(final == answer)

  def jax_rewards(self, responses: jax.Array, targets: jax.Array, target_len: jax.Array) -> jax.Array:
    """`reward` in JAX: the segment after the last `:` before the first EOS equals the answer.

    `targets` holds the answer's tokens, EOS, then PAD (`jax_problems`), and
    `target_len` counts the answer and EOS.
    """
    r = responses.shape[-1]
    pos = jnp.arange(r)[None, :]
    is_eos = responses == EOS
    first_eos = jnp.min(jnp.where(is_eos, pos, r), axis=-1)
    mark = self.tokenizer.encode(ANSWER_MARK)[0]
    marks = (responses == mark) & (pos < first_eos[:, None])
    start = jnp.max(jnp.where(marks, pos, -1), axis=-1) + 1
    # The final segment, shifted to the front, must be the answer then EOS.
    # Past the response's end the clip repeats its last token, so an answer
    # that does not fit cannot match (its EOS would follow a digit at that
    # same position), nor can a response with no EOS.
    segment = jnp.take_along_axis(responses, jnp.clip(start[:, None] + pos, 0, r - 1), axis=-1)
    width = targets.shape[-1]
    if width < r:
      targets = jnp.pad(targets, ((0, 0), (0, r - width)))
    match = (segment == targets[:, :r]) | (pos >= target_len[:, None])
    return jnp.all(match, axis=-1).astype(jnp.float32)
