"""`make mutants`' list stays applicable: each planted bug still matches its file once."""

from __future__ import annotations

import mutants
import pytest


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_mutant_matches_its_file_once(mutant):
  mutants.check(mutant)
  assert mutant.old != mutant.new


def test_names_are_unique_and_enough():
  names = [m.name for m in mutants.MUTANTS]
  assert len(set(names)) == len(names) >= 25
