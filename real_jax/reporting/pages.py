r"""Results pages whose every number is computed from the committed data.

  text = render(open("docs/results/templates/study.md").read(), docs="docs")
  python -m real_jax.study --pages      # renders every template into docs/results/

A page's source is Markdown with fields `{{ expression }}` or
`{{ expression | format }}`: the expression is Python, evaluated with the
names below, and its value is written with `format` (a `format()` spec such
as `.3f` or `+.3f`; `str` without one). A results page then holds no number
that its data does not: `tests/test_pages.py` renders every template and
compares it with the committed page, and fails where a template's prose has
a decimal number outside a field or a code span (settings such as
`tau = 0.5` are written in code spans).

Names in a field:

- `csv("study/summary.csv")`: a committed CSV under `docs/`, as a `Table`;
  `js("bench_losses_cpu.json")`: a committed JSON under `docs/`.
- `Table.where(**match)`, `.one(**match)`, `.col(name)`, `.max(name)`,
  `.min(name)`, `.mean(name)`, `.argmax(name)`, `len(table)`.
- `ci(row, column, digits=3)`: `mean [lo, hi]` of a summary row's column.
- `diff(row, digits=3)`: the reference-minus-this difference with its interval,
  signed; `p(row)`: its sign-flip p and Holm p.
- `S(folder, arm, regime)`: a study's summary row (`docs/<folder>/summary.csv`);
  `G(folder)`, `P(folder)`: its `grid.csv` and `per_seed.csv` as Tables.
- `span(values, digits=2)`: "lo to hi" of some numbers (one number if equal).
- `agree(a, b, column, keys)`: `|a - b|` of `column` for the rows of Tables
  `a` and `b` that match on `keys`.
- `rel(table, column, num, den)`: `table.one(**num)[column] / table.one(**den)[column]`.
- `exists(path)`: whether `docs/<path>` is committed (a section of a page whose
  experiment has not run yet says so).
- `interval(lo, hi, digits=3)`, `abs`, `min`, `max`, `len`, `round`, `sorted`,
  `sum`, `math`, `np`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re

import numpy as np

from real_jax.reporting import study

__all__ = ["Table", "render", "render_all", "bare_numbers", "FIELD", "TEMPLATES"]

TEMPLATES = os.path.join("results", "templates")  # under docs/

FIELD = re.compile(r"\{\{([^\n]+?)\}\}")  # one line each
_CODE = re.compile(r"`[^`\n]*`")
# A decimal number in prose: 0.87, -0.015, +1.5, 3.0e-4 (not "1e-5", a setting's spelling).
_DECIMAL = re.compile(r"(?<![\w.])[-+−]?\d+\.\d+(?:e[-+]?\d+)?(?![\w.])")


class Table:
  """The rows of a CSV, numbers as numbers and empty cells None."""

  def __init__(self, rows: list[dict], name: str = "table"):
    self.rows, self.name = rows, name

  def __len__(self) -> int:
    return len(self.rows)

  def __iter__(self):
    return iter(self.rows)

  def where(self, **match) -> Table:
    """The rows whose columns equal `match` (compared as text, so regime 16 is '16')."""
    for key in match:
      if self.rows and key not in self.rows[0]:
        raise KeyError(f"{self.name} has no column {key!r}; it has {sorted(self.rows[0])}.")
    rows = [r for r in self.rows if all(str(r.get(k)) == str(v) for k, v in match.items())]
    return Table(rows, f"{self.name}[{', '.join(f'{k}={v}' for k, v in match.items())}]")

  def one(self, **match) -> dict:
    rows = self.where(**match).rows
    if len(rows) != 1:
      raise ValueError(f"{self.name}: {len(rows)} rows match {match}, expected 1.")
    return rows[0]

  def col(self, name: str) -> list:
    if self.rows and name not in self.rows[0]:
      raise KeyError(f"{self.name} has no column {name!r}.")
    return [r[name] for r in self.rows if r.get(name) is not None]

  def max(self, name: str):
    return max(self.col(name))

  def min(self, name: str):
    return min(self.col(name))

  def mean(self, name: str) -> float:
    return float(np.mean(self.col(name)))

  def argmax(self, name: str) -> dict:
    return max((r for r in self.rows if r.get(name) is not None), key=lambda r: r[name])

  def argmin(self, name: str) -> dict:
    return min((r for r in self.rows if r.get(name) is not None), key=lambda r: r[name])


def interval(lo: float, hi: float, digits: int = 3, sign: str = "") -> str:
  return f"[{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def ci(row: dict, column: str, digits: int = 3) -> str:
  return (f"{row[f'{column}_mean']:.{digits}f} "
          + interval(row[f"{column}_lo"], row[f"{column}_hi"], digits))


def diff(row: dict, digits: int = 3, metric: str = "test_pass_at_1") -> str:
  """`reference - this` in `metric`: mean and interval, signed."""
  key = study.comparison_prefix(metric)
  return f"{row[f'{key}_mean']:+.{digits}f} " + interval(row[f"{key}_lo"], row[f"{key}_hi"],
                                                          digits, "+")


def p(row: dict, metric: str = "test_pass_at_1") -> str:
  key = study.comparison_prefix(metric)
  return f"p = {row[f'{key}_p']:.3g}, Holm {row[f'{key}_p_holm']:.3g}"


def span(values, digits: int = 2) -> str:
  values = list(values)
  lo, hi = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
  return lo if lo == hi else f"{lo} to {hi}"


def agree(a: Table, b: Table, column: str, keys=("loss", "updates_per_step", "lr", "seed")) -> list:
  index = {tuple(str(r[k]) for k in keys): r[column] for r in b if r.get(column) is not None}
  return [abs(r[column] - index[k]) for r in a if r.get(column) is not None
          and (k := tuple(str(r[k2]) for k2 in keys)) in index]


def _namespace(docs: str) -> dict:
  def committed(path: str) -> str:
    full = os.path.join(docs, path)
    if not os.path.exists(full):
      raise FileNotFoundError(f"a page reads docs/{path}, which is not there.")
    return full

  @functools.cache
  def csv(path: str) -> Table:
    return Table(study.read_summary(committed(path)), path)  # numbers as numbers, empty None

  @functools.cache
  def js(path: str):
    with open(committed(path)) as f:
      return json.load(f)

  def summary_row(folder: str, arm: str, regime) -> dict:
    table = csv(f"{folder}/summary.csv")
    column = "arm" if table.rows and "arm" in table.rows[0] else "loss"
    return table.one(**{column: arm, "regime": regime})

  def rel(table: Table, column: str, num: dict, den: dict) -> float:
    return table.one(**num)[column] / table.one(**den)[column]

  return {"rel": rel, "dict": dict, "any": any, "all": all,
          "exists": lambda path: os.path.exists(os.path.join(docs, path)),
          "csv": csv, "js": js, "ci": ci, "diff": diff, "p": p, "interval": interval, "span": span,
          "agree": agree, "S": summary_row, "G": lambda folder: csv(f"{folder}/grid.csv"),
          "P": lambda folder: csv(f"{folder}/per_seed.csv"), "math": math, "np": np,
          "abs": abs, "min": min, "max": max, "len": len, "round": round, "sorted": sorted,
          "sum": sum, "__builtins__": {}}


def render(template: str, docs: str) -> str:
  """`template` with every field replaced by its value (see the module docstring).

  Raises:
    ValueError: for a field that fails, naming it and its line.
  """
  names = _namespace(docs)

  def value(match: re.Match) -> str:
    expression, _, spec = match.group(1).partition(" | ")
    try:
      result = eval(expression.strip(), names)
      return format(result, spec.strip()) if spec.strip() else str(result)
    except Exception as e:
      line = template.count("\n", 0, match.start()) + 1
      raise ValueError(f"line {line}: {{{{{match.group(1)}}}}} failed: "
                       f"{type(e).__name__}: {e}") from None

  return FIELD.sub(value, template)


def bare_numbers(template: str) -> list[tuple[int, str]]:
  """`(line, number)` for every decimal number of `template` outside fields and code spans."""
  out = []
  for i, line in enumerate(template.splitlines(), 1):
    prose = _CODE.sub("", FIELD.sub("", line))
    out += [(i, m.group(0)) for m in _DECIMAL.finditer(prose)]
  return out


def render_all(docs: str) -> list[str]:
  """Renders every template under `docs/results/templates` into `docs/results`; returns the paths."""
  folder = os.path.join(docs, TEMPLATES)
  written = []
  for name in sorted(os.listdir(folder)):
    if name.endswith(".md"):
      with open(os.path.join(folder, name)) as f:
        text = render(f.read(), docs)
      path = os.path.join(docs, "results", name)
      with open(path, "w") as f:
        f.write(text)
      written.append(path)
  return written
