"""Answer verification for math reasoning data (DeepScaleR, MATH, AIME style).

A model's completion is reduced to its final answer, the content of the last
`\\boxed{...}` (or `\\fbox{...}`), else the text after a closing anchor such as
"the final answer is" or "Answer:". That answer and the gold answer are then
compared for mathematical equivalence by `math-verify` (Hugging Face's
maintained verifier: LaTeX and plain-expression parsing into sympy, numeric
tolerance, sets, intervals, matrices).

`math_reward` returns 1.0 or 0.0 and never raises: model output is arbitrary
text, and one malformed completion must not stop a training step. Anything
that cannot be extracted, parsed or compared scores 0.

`math-verify` is imported on first use, so importing this module costs
nothing; it comes with the `math`, `tunix` and `test` extras.
"""

from __future__ import annotations

from collections.abc import Sequence
import re
import threading
from typing import Any

__all__ = [
    "MAX_ANSWER_CHARS",
    "TIMEOUT_SECONDS",
    "extract_boxed",
    "extract_answer",
    "is_equivalent",
    "math_reward",
    "reward_fn",
]

# Longer extracted answers are not mathematical answers but runaway output;
# handing them to sympy can take seconds each.
MAX_ANSWER_CHARS = 512
# Per-comparison limit enforced by math-verify with SIGALRM (main thread only).
TIMEOUT_SECONDS = 5

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANCHORS = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|answer\s*(?:is|:)|####)\s*", re.IGNORECASE)


def extract_boxed(text: str) -> str | None:
  """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, or None.

  Braces are matched, so `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`. The
  brace-less form `\\boxed 5` gives `5`. An unclosed box gives None.
  """
  if not isinstance(text, str):
    return None
  start, command = max((text.rfind(cmd), cmd) for cmd in _BOX_COMMANDS)
  if start < 0:
    return None
  rest = text[start + len(command):]
  if rest.startswith(" "):
    token = rest.strip().split(maxsplit=1)
    return token[0].rstrip("$.") if token else None
  if not rest.startswith("{"):
    return None
  depth = 0
  for i, ch in enumerate(rest):
    if ch == "{":
      depth += 1
    elif ch == "}":
      depth -= 1
      if depth == 0:
        return rest[1:i].strip()
  return None


def extract_answer(text: str) -> str | None:
  """The final answer a completion commits to, as a string, or None.

  Priority: the last box; else what follows the last "final answer is",
  "answer is", "Answer:" or "####" anchor, up to the end of that line (with
  `$...$` and a trailing full stop removed). A completion with neither has
  no committed answer and gives None: taking the last number of free text
  would reward guesses that happen to appear in a derivation.
  """
  if not isinstance(text, str):
    return None
  boxed = extract_boxed(text)
  if boxed is not None:
    return boxed or None
  anchors = list(_ANCHORS.finditer(text))
  if not anchors:
    return None
  line = text[anchors[-1].end():].split("\n", 1)[0].strip()
  line = line.strip("$ ").rstrip(".").strip("$ ")
  return line or None


def _in_main_thread() -> bool:
  return threading.current_thread() is threading.main_thread()


def _parse(answer: str, timeout: int | None) -> list[Any]:
  import math_verify  # noqa: PLC0415
  # Wrapping in a box makes math-verify read the whole answer as one LaTeX
  # expression, whether it is written as LaTeX (`\frac{3}{4}`), as plain text
  # (`3/4`, `0.75`) or as an interval (`(1, 2]`).
  return math_verify.parse(
      "\\boxed{" + answer + "}",
      extraction_config=[
          math_verify.LatexExtractionConfig(boxed_match_priority=0),
          math_verify.ExprExtractionConfig(),
      ],
      parsing_timeout=timeout,
  )


def is_equivalent(answer: str, gold: str, *,
                  timeout_seconds: int = TIMEOUT_SECONDS) -> bool:
  """Whether two extracted answers are mathematically equal (never raises).

  `timeout_seconds` bounds each parse and comparison when called from the
  main thread (math-verify uses SIGALRM); elsewhere there is no bound.
  """
  try:
    if not isinstance(answer, str) or not isinstance(gold, str):
      return False
    answer, gold = answer.strip(), gold.strip()
    if not answer or not gold or len(answer) > MAX_ANSWER_CHARS:
      return False
    if answer == gold:
      return True
    import math_verify  # noqa: PLC0415
    # math-verify's timeouts use SIGALRM, which only the main thread may
    # set; a reward function called from a rollout worker thread runs
    # without one rather than failing.
    timeout = timeout_seconds if _in_main_thread() else None
    gold_parsed = _parse(gold, timeout)
    answer_parsed = _parse(answer, timeout)
    if not gold_parsed or not answer_parsed:
      return False
    return bool(math_verify.verify(gold_parsed, answer_parsed,
                                   timeout_seconds=timeout))
  except Exception:  # pylint: disable=broad-except
    # Malformed model output must cost a reward, never the training step.
    return False


def math_reward(completion: str, gold: str, *,
                timeout_seconds: int = TIMEOUT_SECONDS) -> float:
  """1.0 if `completion`'s final answer equals `gold`, else 0.0 (never raises).

  Args:
    completion: the model's full response text.
    gold: the reference answer, plain (`3/4`) or LaTeX (`\\frac{3}{4}`), with
      or without its own `\\boxed{}`.
    timeout_seconds: bound on each parse and comparison (main thread only).

  Example:
    >>> math_reward("so the answer is \\\\boxed{\\\\frac{1}{2}}", "0.5")
    1.0
    >>> math_reward("I think it is 0.5 but not sure", "0.5")
    0.0
  """
  answer = extract_answer(completion)
  if answer is None:
    return 0.0
  gold_answer = extract_boxed(gold) if isinstance(gold, str) else None
  return 1.0 if is_equivalent(answer, gold_answer or gold,
                              timeout_seconds=timeout_seconds) else 0.0


def reward_fn(prompts: Sequence[str], completions: Sequence[str],
              answer: Sequence[str], **kwargs: Any) -> list[float]:
  """A Tunix-style reward function: one 0/1 reward per completion.

  Tunix calls reward functions with the batch's columns as keyword arguments,
  so a dataset with an `answer` column is scored by passing this function as
  `reward_fns=[reward_fn]`. `answer` holds one gold answer per completion
  (Tunix repeats each prompt's columns `G` times).
  """
  del prompts, kwargs
  if len(completions) != len(answer):
    raise ValueError(
        f"`answer` must hold one gold answer per completion; got "
        f"{len(answer)} answers for {len(completions)} completions.")
  return [math_reward(c, str(a)) for c, a in zip(completions, answer, strict=True)]
