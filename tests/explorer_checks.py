"""What the gradient explorer must do in a browser; run on the built site and on a bare page.

`run(browser, url)` opens the explorer at `url` with its controls set through
URL parameters and checks that the drawn curves are the committed JSON's,
that REAL's change with `tau` and GRPO's do not, that GRPO's change with
`epsilon_low`, and that nothing outside the page's own files was requested.
"""

from __future__ import annotations

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "docs", "explorer", "data", "explorer.json")


def load() -> dict:
  with open(DATA) as f:
    return json.load(f)


def data_script() -> str:
  """The committed data as the script the page loads (a page opened from disk cannot fetch JSON)."""
  with open(DATA) as f:
    return "window.EXPLORER_DATA = " + f.read() + ";\n"


def stored(data: dict, name: str, setting: dict, key: str) -> dict:
  """The committed arrays of one objective, setting and `G,k,sign` group."""
  entry = next(e for e in data["objectives"][name]["settings"] if e["setting"] == setting)
  ids = entry["cases"][key]
  return {kind: None if i is None else data["arrays"][i]
          for kind, i in zip(("probe", "closed", "pos", "neg"), ids, strict=True)}


def drawn(page) -> dict:
  """`{objective: {kind: values}}` of the curves on the page."""
  return page.evaluate("""Object.fromEntries([...new Set([...document.querySelectorAll(
      '#explorer-curves path[data-objective]')].map(p => p.dataset.objective))].map(n => [n,
      Object.fromEntries([...document.querySelectorAll(`#explorer-curves path[data-objective="${n}"]`)]
      .map(p => [p.dataset.kind, JSON.parse(p.dataset.values)]))]))""")


def _open(b, url: str, query: str):
  page = b.open(f"{url}?{query}")
  page.wait_for("document.getElementById('explorer') && "
                "document.getElementById('explorer').dataset.ready === '1'")
  return page


def _default(data, name):
  obj = data["objectives"][name]
  return {c: obj["defaults"][c] for c in obj["controls"]}


def run(b, url: str, screenshots: str | None = None) -> str:
  data = load()
  base = "objectives=real,grpo&G=8&k=4&sign=negative&s=0.8"
  pages = {tau: _open(b, url, f"{base}&tau={tau}") for tau in (0.5, 0.1)}
  curves = {tau: drawn(page) for tau, page in pages.items()}
  for tau, got in curves.items():
    assert set(got) == {"real", "grpo"}, got.keys()
    real = stored(data, "real", {"tau": tau}, "8,4,negative")
    grpo = stored(data, "grpo", _default(data, "grpo"), "8,4,negative")
    assert got["real"]["probe"] == real["probe"] and got["real"]["closed"] == real["closed"]
    assert got["grpo"]["probe"] == grpo["probe"] and got["grpo"]["closed"] == grpo["closed"]
  assert curves[0.5]["real"]["probe"] != curves[0.1]["real"]["probe"]  # tau moves REAL
  assert curves[0.5]["grpo"] == curves[0.1]["grpo"]  # and not GRPO
  # The clip's lower end moves GRPO's negative probe (index 0: the smallest epsilon_low).
  low = drawn(_open(b, url, f"{base}&tau=0.5&epsilon_low=0"))["grpo"]["probe"]
  grpo_low = stored(data, "grpo", {**_default(data, "grpo"),
                                   "epsilon_low": data["objectives"]["grpo"]["controls"][
                                       "epsilon_low"][0]}, "8,4,negative")
  assert low == grpo_low["probe"] and low != curves[0.5]["grpo"]["probe"]
  # The group's bars: G of them per objective, the probe's at s = 0.8.
  bars = pages[0.5].evaluate("[...document.querySelectorAll('#explorer-bars rect')]"
                             ".map(r => [r.dataset.objective, Number(r.dataset.weight)])")
  j = data["s"].index(0.8)
  real = stored(data, "real", {"tau": 0.5}, "8,4,negative")
  assert [w for n, w in bars if n == "real"] == [real["probe"][j]] + [real["pos"][j]] * 4 + [
      real["neg"][j]] * 3
  outside = [u for p in pages.values() for u in p.requests()
             if not u.startswith(("file:", "data:"))]
  assert not outside, outside
  if screenshots:
    os.makedirs(screenshots, exist_ok=True)
    pages[0.5].screenshot(os.path.join(screenshots, "explorer_default.png"), "#explorer")
    eps = data["objectives"]["dapo"]["controls"]["epsilon_high"]
    other = _open(b, url, "objectives=real,dapo&G=16&k=4&sign=positive&s=-0.8&tau=0.1"
                  f"&epsilon_high={len(eps) - 1}")
    other.screenshot(os.path.join(screenshots, "explorer_tau01.png"), "#explorer")
  return "curves follow tau (REAL) and epsilon_low (GRPO), match the JSON, bars per group"
