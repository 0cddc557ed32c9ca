"""The results pages: rendered from their templates, every number computed from the committed data."""

from __future__ import annotations

import os
import shutil

import pytest

from real_jax.reporting import pages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
RESULTS = os.path.join(DOCS, "results")
TEMPLATES = os.path.join(DOCS, pages.TEMPLATES)
PAGES = sorted(p for p in os.listdir(RESULTS) if p.endswith(".md"))


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


@pytest.mark.parametrize("page", PAGES)
def test_every_results_page_is_its_template_rendered(page):
  template = os.path.join(TEMPLATES, page)
  assert os.path.exists(template), (
      f"docs/results/{page} has no template: its numbers would be typed by hand")
  assert pages.render(_read(template), DOCS) == _read(os.path.join(RESULTS, page)), (
      f"docs/results/{page} differs from its template rendered on the committed data: "
      "run python -m real_jax.study --pages")


@pytest.mark.parametrize("page", PAGES)
def test_no_number_is_typed_in_prose(page):
  template = os.path.join(TEMPLATES, page)
  if os.path.exists(template):
    assert pages.bare_numbers(_read(template)) == []


def test_a_changed_number_changes_the_page(tmp_path):
  docs = tmp_path / "docs"
  shutil.copytree(os.path.join(DOCS, "study"), docs / "study")
  template = "GRPO at 16: {{ diff(S('study', 'grpo', 16)) }}"
  before = pages.render(template, str(docs))
  summary = docs / "study" / "summary.csv"
  rows = summary.read_text().splitlines()
  header = rows[0].split(",")
  column = header.index("reference_minus_this_test_mean")
  for i, line in enumerate(rows):
    cells = line.split(",")
    if cells[header.index("arm")] == "grpo" and cells[header.index("regime")] == "16":
      cells[column] = "-0.5"
      rows[i] = ",".join(cells)
  summary.write_text("\n".join(rows) + "\n")
  after = pages.render(template, str(docs))
  assert before != after and after.startswith("GRPO at 16: -0.500 [")


class TestRender:

  def test_fields_formats_and_helpers(self, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "t.csv").write_text("arm,regime,v\nreal,1,0.25\ngrpo,1,0.5\ngrpo,16,\n")
    t = ("{{ csv('x/t.csv').one(arm='grpo', regime=1)['v'] | .3f }} "
         "{{ csv('x/t.csv').max('v') }} {{ span(csv('x/t.csv').col('v')) }} "
         "{{ len(csv('x/t.csv').where(arm='grpo')) }} {{ csv('x/t.csv').argmax('v')['arm'] }}")
    assert pages.render(t, str(tmp_path)) == "0.500 0.5 0.25 to 0.50 2 grpo"
    assert pages.render("{{ span([0.5, 0.5]) }} {{ 1 / 3 | +.2f }}", "") == "0.50 +0.33"

  @pytest.mark.parametrize("field, match", [
      ("{{ csv('nope.csv') }}", "line 2: .*nope.csv.*not there"),
      ("{{ csv('x/t.csv').one(arm='grpo') }}", "2 rows match"),
      ("{{ csv('x/t.csv').where(lossy=1) }}", "no column 'lossy'"),
      ("{{ open('/etc/passwd') }}", "NameError"),
  ])
  def test_a_failing_field_names_its_line(self, tmp_path, field, match):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "t.csv").write_text("arm,v\ngrpo,1\ngrpo,2\n")
    with pytest.raises(ValueError, match=match):
      pages.render("text\n" + field, str(tmp_path))

  def test_bare_numbers(self):
    text = ("a 0.87 and `tau = 0.5` and {{ 1.5 }}\nlr 1e-5, 1.5B, -0.015, 2/32, v0.10.2, "
            "+1.25e-3 here")
    assert pages.bare_numbers(text) == [(1, "0.87"), (2, "-0.015"), (2, "+1.25e-3")]
