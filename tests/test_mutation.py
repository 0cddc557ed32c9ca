"""`tests/mutation.py` (make mutation): its statistics and its test selection."""

from __future__ import annotations

import math
import os

import mutation  # tests/ is on the path (setup.cfg)
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wilson_against_hand_computations():
  z = 1.959964
  # All killed: the lower end is n / (n + z^2), the upper 1.
  lo, hi = mutation.wilson(6, 6)
  assert lo == pytest.approx(6 / (6 + z * z)) and hi == pytest.approx(1.0)
  # Half of 100: centre 0.5, half-width z * sqrt(0.25/100 + z^2/40000) / (1 + z^2/100).
  lo, hi = mutation.wilson(50, 100)
  half = z * math.sqrt(0.0025 + z * z / 40000) / (1 + z * z / 100)
  assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))
  assert all(math.isnan(x) for x in mutation.wilson(0, 0))


def test_equivalent_mutants_leave_the_denominator():
  results = [dict(module="a.py", operator="op", occurrence=i, line=i, definition="f",
                  outcome=outcome, diff="")
             for i, outcome in enumerate(["killed", "killed", "survived", "survived"])]
  triage = {"a.py:op:2": {"verdict": "equivalent", "why": "no input tells them apart"}}
  s = mutation.summarise(results, triage)
  assert s["total"] == dict(killed=2, later=0, survived=1, equivalent=1, rate=pytest.approx(2 / 3),
                            interval=pytest.approx(mutation.wilson(2, 3)))
  text = mutation.markdown({"plan": dict(sample=4, population=9, seed=0, commit="0" * 40),
                            "results": results, "summary": s}, triage)
  assert "**equivalent**: no input tells them apart" in text
  assert text.count("**not triaged yet**") == 1  # occurrence 3
  # A survivor that a new test kills counts as killed, and says by which test.
  triage["a.py:op:3"] = {"verdict": "killed", "why": "killed by test_x (new)"}
  s = mutation.summarise(results, triage)
  assert (s["total"]["killed"], s["total"]["later"], s["total"]["survived"]) == (3, 1, 0)


def test_every_target_has_existing_tests():
  files = mutation._target_files()
  assert "real_jax/grad_analysis/_closed_forms.py" in files
  assert any(f.startswith("real_jax/losses/") for f in files)
  for f in files:
    assert os.path.isfile(os.path.join(ROOT, f))
    for t in mutation.tests_for(f).split():
      assert os.path.isfile(os.path.join(ROOT, t)), (f, t)
  with pytest.raises(KeyError):
    mutation.tests_for("real_jax/train.py")


SOURCE = '''import math

LIMIT = 3


def f(x, eps=1e-6):
  y = x + eps
  return y


class C:
  def g(self, x):
    return math.sqrt(x)
'''


def test_changed_lines_against_hand_diffs():
  before = SOURCE.splitlines()
  after = list(before)
  after[6] = "  y = x - eps"  # line 7
  assert mutation.changed_lines(before, after) == {7}
  assert mutation.changed_lines(before, before[:6] + before[7:]) == {7}  # a deletion
  assert mutation.changed_lines(before, before) == set()


def test_enclosing_function_is_the_innermost_and_module_level_is_none():
  assert mutation.enclosing_function_lines(SOURCE, {6}) == {6, 7, 8}  # the signature's default
  assert mutation.enclosing_function_lines(SOURCE, {13}) == {12, 13}  # the method, not the class
  assert mutation.enclosing_function_lines(SOURCE, {3}) is None       # LIMIT
  assert mutation.enclosing_function_lines(SOURCE, {11}) is None      # the class line


def test_selection_both_ways(monkeypatch):
  monkeypatch.setitem(mutation.TESTS, "pkg/", "tests/test_a.py")
  order = ["tests/test_a.py::t1", "tests/test_a.py::t2", "tests/test_a.py::t3",
           "tests/test_b.py::t4", "tests/test_a.py::cli"]
  cov = {"lines": {"pkg/m.py": {"7": ["tests/test_a.py::t2", "tests/test_b.py::t4"],
                                "8": ["tests/test_a.py::t1"]}},
         "order": order, "subprocess": ["tests/test_a.py::cli"]}
  # The tests that ran the line, in collection order, only the module's own,
  # and the subprocess test that coverage cannot see into.
  assert mutation.select_tests("pkg/m.py", {7}, SOURCE, cov) == [
      "tests/test_a.py::t2", "tests/test_a.py::cli"]
  # A signature line no test ran: the tests that ran the function's body.
  assert mutation.select_tests("pkg/m.py", {6}, SOURCE, cov) == [
      "tests/test_a.py::t1", "tests/test_a.py::t2", "tests/test_a.py::cli"]
  # Module-level code no test ran, or a function no test ran: every test (None).
  assert mutation.select_tests("pkg/m.py", {3}, SOURCE, cov) is None
  assert mutation.select_tests("pkg/m.py", {13}, SOURCE, cov) is None


def test_shared_contexts_credit_every_test_that_shares_them():
  order = ["tests/test_a.py::t1", "tests/test_a.py::C::t2[x]", "tests/test_b.py::t3"]
  users = mutation.context_users(order, {order[0]: ["tiny"], order[2]: ["tiny", "big"]})
  assert users["fixture:tiny"] == [order[0], order[2]] and users["fixture:big"] == [order[2]]
  # What a test module's import ran (a task built as a parametrize argument):
  # every test of that module, and no other.
  assert users["collect:tests/test_a.py"] == order[:2]
  assert users["collect:tests/test_b.py"] == [order[2]]


def test_every_test_the_triage_names_exists():
  # A reviewer checks a "killed" verdict by running the test it names.
  import json  # noqa: PLC0415
  import re  # noqa: PLC0415
  with open(mutation.TRIAGE) as f:
    triage = json.load(f)
  killed = [t for t in triage.values() if t["verdict"] == "killed"]
  assert killed and all(t["verdict"] in ("killed", "equivalent") for t in triage.values())
  for t in killed:
    node = re.match(r"killed by (tests/\S+)", t["why"]).group(1)
    path, *names = node.split("::")
    with open(os.path.join(ROOT, path)) as f:
      source = f.read()
    for name in names:
      assert re.search(rf"(def|class) {re.escape(name.split('[')[0])}\b", source), node
