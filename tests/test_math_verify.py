"""The math answer verifier: extraction, equivalence through math-verify, robustness."""

from __future__ import annotations

import threading

import hypothesis
from hypothesis import strategies as st
import pytest

from real_jax.tasks import math as math_task

pytest.importorskip("math_verify")


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("first \\boxed{3}, then \\boxed{4}", "4"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("\\boxed 5$.", "5"),
    ("\\fbox{7}", "7"),
    ("\\boxed{\\frac{1}{", None),        # unclosed
    ("\\boxed", None),
    ("no box", None),
])
def test_extract_boxed(text, expected):
  assert math_task.extract_boxed(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("Answer: 12\nthat's all", "12"),
    ("answer is 7. Wait, the answer is 8.", "8"),
    ("#### 42", "42"),
    ("Answer: \\boxed{9} (the answer is 10)", "9"),  # a box wins over anchors
    ("I computed 17 and 19", None),              # no committed answer
    ("Answer:", None),
    ("\\boxed{}", None),
])
def test_extract_answer(text, expected):
  assert math_task.extract_answer(text) == expected


EQUIVALENT = [
    # fractions, decimals, percentages
    ("\\boxed{\\frac{1}{2}}", "0.5"),
    ("\\boxed{1/2}", "\\frac{1}{2}"),
    ("\\boxed{0.5}", "\\dfrac12"),
    ("\\boxed{50\\%}", "0.5"),
    ("\\boxed{0.333333333}", "0.333333333"),
    ("\\boxed{-\\frac{3}{4}}", "-0.75"),
    # LaTeX forms of the same number or expression
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}"),
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}"),
    ("\\boxed{1,000}", "1000"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2"),
    ("\\boxed{3}", "\\boxed{3}"),   # gold given boxed
    # intervals and sets
    ("\\boxed{(1, 2]}", "(1,2]"),
    ("\\boxed{x \\in (1,2]}", "(1,2]"),
    ("\\boxed{(-\\infty, 3)}", "(-\\infty,3)"),
    ("\\boxed{\\{1,2\\}}", "\\{2,1\\}"),
    # plain answers after an anchor
    ("The final answer is $\\frac{3}{4}$.", "0.75"),
    ("Final answer: 12", "12"),
    ("#### 42", "42"),
]

NOT_EQUIVALENT = [
    ("\\boxed{3}", "4"),
    ("\\boxed{\\frac{1}{3}}", "0.33"),
    ("\\boxed{[1, 2)}", "(1,2]"),
    ("\\boxed{(1, 2)}", "(1,2]"),
    ("\\boxed{\\{1,2,3\\}}", "\\{1,2\\}"),
    ("\\boxed{x+1}", "x-1"),
    ("\\boxed{-0.5}", "0.5"),
    ("the answer is 0.5 I think", "0.6"),
]

GARBAGE = [
    "",
    "I am not sure.",
    "garbage }}}{{{ \\boxed{",
    "\\boxed{\\frac{1}{",
    "\\boxed{}",
    "\\boxed{\\x}",
    "\x00\xff\ud7ff\\boxed{\u2603}",
    "$$$$\\\\\\\\",
    "\\boxed{" + "9" * 600 + "}",   # runaway output, longer than MAX_ANSWER_CHARS
    "\\boxed{\\begin{matrix} 1 & 2 \\end{matrix}",
]


@pytest.mark.parametrize("completion, gold", EQUIVALENT)
def test_equivalent_forms_score_one(completion, gold):
  assert math_task.math_reward(completion, gold) == 1.0


@pytest.mark.parametrize("completion, gold", NOT_EQUIVALENT)
def test_wrong_answers_score_zero(completion, gold):
  assert math_task.math_reward(completion, gold) == 0.0


@pytest.mark.parametrize("completion", GARBAGE)
def test_garbage_scores_zero_without_raising(completion):
  assert math_task.math_reward(completion, "1") == 0.0


@pytest.mark.parametrize("completion, gold", [
    (None, "1"), ("\\boxed{1}", None), (3, 3), (b"\\boxed{1}", "1"),
])
def test_non_strings_score_zero(completion, gold):
  assert math_task.math_reward(completion, gold) == 0.0


@pytest.mark.timeout(60)  # a broken timeout fails here instead of hanging the run
def test_a_slow_comparison_is_cut_off():
  # A tower of powers that sympy would try to evaluate: bounded by the timeout.
  assert math_task.math_reward("\\boxed{10^{10^{10^{10}}}}", "1",
                               timeout_seconds=1) == 0.0


def test_works_off_the_main_thread():
  # SIGALRM cannot be set there, so the verifier runs without a timeout
  # rather than failing: a reward function may be called from a worker.
  out = []
  worker = threading.Thread(target=lambda: out.append(
      math_task.math_reward("\\boxed{\\frac{1}{2}}", "0.5")))
  worker.start()
  worker.join()
  assert out == [1.0]


def test_reward_fn_scores_a_batch_in_tunix_form():
  rewards = math_task.reward_fn(
      prompts=["p"] * 3,
      completions=["\\boxed{2}", "\\boxed{3}", "nothing"],
      answer=["2", "2", "2"], question=["q"] * 3)
  assert rewards == [1.0, 0.0, 0.0]
  with pytest.raises(ValueError, match="one gold answer per completion"):
    math_task.reward_fn(prompts=["p"], completions=["a", "b"], answer=["1"])


_LATEXISH = st.lists(
    st.sampled_from(list("0123456789+-*/^_{}()[]$.,=\\ x") +
                    ["\\frac", "\\sqrt", "\\boxed{", "\\pi", "\\infty", "\\{"]),
    max_size=30).map("".join)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(text=st.one_of(st.text(max_size=80), _LATEXISH),
                  gold=st.one_of(st.text(max_size=10), _LATEXISH))
def test_never_raises_and_returns_zero_or_one(text, gold):
  assert math_task.math_reward(text, gold, timeout_seconds=1) in (0.0, 1.0)
  assert math_task.math_reward("\\boxed{" + text + "}", gold,
                               timeout_seconds=1) in (0.0, 1.0)
