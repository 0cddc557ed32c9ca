"""The gradient check's report as text (the command's tables) and as Markdown.

`report_markdown` turns the command's `report.json` into the table of the
results page; the command writes it beside the JSON (`report.md`), and a test
remakes it from the committed JSON.
"""

from __future__ import annotations

__all__ = ["format_table", "format_properties", "report_markdown"]


def format_table(table: dict, dtypes) -> str:
  header = (f"{'objective':<18} {'sign':<9} {'dtype':<8} {'cases':>10} {'max abs err':>12} "
            f"{'max rel err':>12} {'tol':>7} {'bounded':>8} {'shape':>6} {'zeros':>6}  status")
  lines = [header, "-" * len(header)]
  for name, by_sign in table.items():
    for sign, by_dtype in by_sign.items():
      for dtype in dtypes:
        r = by_dtype[dtype]
        lines.append(
            f"{name:<18} {sign:<9} {dtype:<8} {int(r['cases']):>10,d} {r['max_abs_err']:>12.3e} "
            f"{r['max_rel_err']:>12.3e} {r['tolerance']:>7.0e} {str(r['bounded']):>8} "
            f"{str(r['monotonic']):>6} {r['zero_fraction']:>6.3f}  "
            f"{status(r)}")
  return "\n".join(lines)


# What a row or cell that saw no cases says: it checked nothing.
NO_CASES = "n/a (no cases)"


def status(row: dict) -> str:
  """A row's verdict: a row that saw no cases checked nothing, and says so."""
  if not row["cases"]:
    return NO_CASES
  return "ok" if row["passed"] else "FAIL"


def format_properties(properties: dict, dtype: str) -> str:
  """Each objective's closed-form properties per sign, as measured in `dtype`."""
  lines = [f"{'objective':<18} {'sign':<9} {'bound per unit |A| (label: per group)':<44} "
           f"{'measured max':>12}  shape in s"]
  for name, by_sign in properties.items():
    for sign, by_dtype in by_sign.items():
      p = by_dtype[dtype]
      measured = p.get("max_unit_weight", p["max_weight"])
      lines.append(f"{name:<18} {sign:<9} {p['bound']:<44} {measured:>12.4g}  {p['direction']}")
  lines.append("Zero where:")
  seen = set()
  for by_sign in properties.values():
    where = by_sign["positive"][dtype]["zero_where"]
    if where not in seen:
      seen.add(where)
      names = [n for n, b in properties.items() if b["positive"][dtype]["zero_where"] == where]
      lines.append(f"  {', '.join(names)}: {where}")
  return "\n".join(lines)


def _err(x: float) -> str:
  return "0" if x == 0 else f"{x:.1e}"


def report_markdown(report: dict) -> str:
  """`report.json` (as the command writes it) as the results page's Markdown."""
  dtypes = list(report["tolerance"])
  last = dtypes[-1]
  tol = ", ".join(f"{report['tolerance'][d]:g} in {d}" for d in dtypes)
  lines = [
      f"{report['cases_per_dtype']:,d} random groups per dtype (seed {report['seed']}) on "
      f"{report['platform']} ({report['device_kind']}), JAX {report['jax_version']}, Python "
      f"{report['python']}: {'PASS' if report['passed'] else 'FAIL'} (tolerance {tol}; "
      f"{report['seconds']:.0f} s). Bounds are per unit |A| for the advantage-weighted "
      f"objectives, without the aggregation factor; \"measured\" is the largest weight "
      f"seen in {last}.",
      "",
      "| objective | sign | " + " | ".join(f"max rel err ({d})" for d in dtypes)
      + " | bound | measured | shape in s | exactly zero |",
      "|" + " --- |" * (len(dtypes) + 6),
  ]
  for name, by_sign in report["table"].items():
    for sign, by_dtype in by_sign.items():
      p = report["properties"][name][sign][last]
      measured = p.get("max_unit_weight", p["max_weight"])
      errs = [(NO_CASES if not by_dtype[d]["cases"] else _err(by_dtype[d]["max_rel_err"]))
              + ("" if by_dtype[d]["passed"] else " **FAIL**") for d in dtypes]
      bound = p["bound"] if p["bounded"] else f"**{p['bound']}**"
      lines.append(f"| {name} | {sign} | " + " | ".join(errs)
                   + f" | {bound} | {measured:.4g} | {p['direction']} "
                   f"| {100 * p['zero_fraction']:.1f}% |")
  lines += ["", "Where each objective's weight is exactly zero:", ""]
  seen: dict[str, list[str]] = {}
  for name, by_sign in report["properties"].items():
    seen.setdefault(by_sign["positive"][last]["zero_where"], []).append(name)
  lines += [f"- {', '.join(names)}: {where}" for where, names in seen.items()]
  neutral = report.get("neutral", {})
  if neutral:
    lines += ["", "Tokens with A = 0, which only a penalty moves (DRO's pull, KL-Cov's selected "
              "tokens, the positive NLL): max relative error "
              + "; ".join(f"{name} " + ", ".join(
                  f"{_err(r['max_rel_err'])} over {int(r['moving']):,d} moving tokens ({d})"
                  + ("" if r["passed"] else " **FAIL**") for d, r in by_dtype.items())
                  for name, by_dtype in neutral.items()) + "."]
  if report["identities"]:
    lines += ["", "Identities (max relative error, " + last + "): "
              + "; ".join(f"`{k}` {v:.1e}" for k, v in report["identities"].items()) + "."]
  if report["domination"]:
    lines += ["", "The largest negative's share of a group's negative gradient mass (groups "
              f"with at least two negatives, {dtypes[0]}):", "",
              "| objective | groups | mean | median | 90th percentile | share > 1/2 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, d in report["domination"].items():
      if d["groups"]:
        lines.append(f"| {name} | {d['groups']:,d} | {d['mean']:.3f} | {d['median']:.3f} "
                     f"| {d['p90']:.3f} | {100 * d['above_half']:.1f}% |")
  return "\n".join(lines) + "\n"
