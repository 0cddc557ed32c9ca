"""`make mutants`' list stays applicable: each planted bug still matches its file once."""

from __future__ import annotations

import json
import os

import mutants
import pytest


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_mutant_matches_its_file_once(mutant):
  mutants.check(mutant)
  assert mutant.old != mutant.new


def test_names_are_unique_and_enough():
  names = [m.name for m in mutants.MUTANTS]
  assert len(set(names)) == len(names) >= 25


def test_committed_table_is_its_json_rendered():
  docs = os.path.join(mutants.ROOT, "docs")
  with open(os.path.join(docs, "mutants.json")) as f:
    report = json.load(f)
  with open(os.path.join(docs, "mutants.md")) as f:
    assert f.read() == mutants.render(report)
  assert [r["name"] for r in report["rows"]] == [m.name for m in mutants.MUTANTS]
