"""The gradient explorer: its committed data against autodiff and by hand, and the page in Chromium."""

from __future__ import annotations

import math
import os
import runpy
import shutil

import browser
import explorer_checks
import numpy as np
import pytest

from real_jax import losses
from real_jax.grad_analysis import explorer
from real_jax.losses import _registry

ROOT = explorer_checks.ROOT


MECHANISM = os.path.join(ROOT, "experiments", "configs", "mechanism.py")


@pytest.fixture(scope="module")
def data():
  """The committed data, with the mechanism study's variants registered (undone after)."""
  specs, names = dict(_registry._SPECS), dict(losses.LOSSES)
  runpy.run_path(MECHANISM)
  yield explorer_checks.load()
  _registry._SPECS.clear()
  _registry._SPECS.update(specs)
  losses.LOSSES.clear()
  losses.LOSSES.update(names)


def test_small_and_every_control_has_five_values(data):
  assert os.path.getsize(explorer_checks.DATA) <= 3_000_000
  # The shipped objectives and the registered ones with a closed form (make explorer
  # registers the mechanism study's frozen and zero-sum REAL).
  assert set(data["objectives"]) == (set(losses.LABEL_LOSSES) | set(losses.ADVANTAGE_LOSSES)
                                     | {"frozen_real", "zero_sum_real"})
  assert set(explorer.registered_with_closed_forms()) == {"frozen_real", "zero_sum_real"}
  assert len(data["s"]) >= 5 and len(data["groups"]) >= 5
  assert all(len(ks) >= 5 for ks in data["groups"].values())
  for name, obj in data["objectives"].items():
    assert obj["controls"] == {c: list(v) for c, v in explorer.controls(name).items()}
    assert all(len(v) >= 5 for v in obj["controls"].values()), name
    assert [e["setting"] for e in obj["settings"]] == explorer.settings(name)
    assert obj["color"], name  # from the palette
  assert "tau" in data["objectives"]["real"]["controls"]
  assert {"epsilon_low", "epsilon_high", "clip_ratio_c", "delta"} <= set(
      data["objectives"]["grpo"]["controls"])


@pytest.mark.x64
def test_a_sample_of_the_grid_recomputed(data):
  rng = np.random.default_rng(0)
  names = sorted(data["objectives"])
  for _ in range(12):
    name = names[rng.integers(len(names))]
    entries = data["objectives"][name]["settings"]
    entry = entries[rng.integers(len(entries))]
    fresh = explorer.weights(name, entry["setting"])
    keys = sorted(entry["cases"])
    for key in (keys[rng.integers(len(keys))] for _ in range(3)):
      g, k, sign = key.split(",")
      want = fresh[(int(g), int(k), sign)]
      got = explorer_checks.stored(data, name, entry["setting"], key)
      for kind in ("probe", "closed", "pos", "neg"):
        if want[kind] is None:
          assert got[kind] is None, (name, key, kind)
        else:
          np.testing.assert_allclose(got[kind], want[kind], rtol=1e-4, atol=1e-12,
                                     err_msg=f"{name} {entry['setting']} {key} {kind}")


def test_real_by_hand(data):
  # On-policy others: C- = n-, C+ = n+ with the probe counted; |W| = (1/tau) / (1 + C e^{-+s/tau}).
  s = np.asarray(data["s"])
  for tau in data["objectives"]["real"]["controls"]["tau"]:
    for g, ks in data["groups"].items():
      g = int(g)
      for k in ks:
        for sign, n in (("positive", k), ("negative", g - k)):
          if n == 0:
            continue
          got = explorer_checks.stored(data, "real", {"tau": tau}, f"{g},{k},{sign}")
          if 0 < k < g:
            c = n  # the probe's own label: C = 1 + (n - 1) others at s = 0
            want = 1 / tau / (1 + c * np.exp((s if sign == "positive" else -s) / tau))
            np.testing.assert_allclose(got["probe"], want, rtol=1e-4, atol=1e-300)
            np.testing.assert_allclose(got["closed"], want, rtol=1e-4, atol=1e-300)
            assert max(got["probe"]) <= 1 / tau  # the bound (reached to 5 digits at tau 0.05)
          else:  # a one-sided group has no loss
            assert max(got["probe"]) == 0


def test_registered_variants_by_hand(data):
  # Frozen REAL holds REAL's on-policy weight 1/(tau (1 + n)) whatever the score;
  # zero-sum REAL's group weights sum to zero (the probe, k - 1 or k others, the rest).
  for tau in data["objectives"]["frozen_real"]["controls"]["tau"]:
    for key, n in (("8,4,negative", 4), ("8,1,positive", 1), ("16,12,negative", 4)):
      got = explorer_checks.stored(data, "frozen_real", {"tau": tau}, key)
      np.testing.assert_allclose(got["probe"], 1 / (tau * (1 + n)), rtol=1e-4)
      np.testing.assert_allclose(got["closed"], got["probe"], rtol=1e-4)
  for key in ("8,1,positive", "8,6,negative", "12,3,negative"):
    g, k, sign = key.split(",")
    g, k = int(g), int(k)
    got = explorer_checks.stored(data, "zero_sum_real", {"tau": 0.5}, key)
    for j in range(len(data["s"])):
      probe = got["probe"][j]
      pos, neg = ((got[side] or [0.0] * len(data["s"]))[j] for side in ("pos", "neg"))
      # The data keep magnitudes, and re-centring may flip a weight's sign: some
      # choice of signs must cancel (a group that does not sum to zero fails).
      count_pos, count_neg = (k - 1, g - k) if sign == "positive" else (k, g - k - 1)
      total = min(abs(a * probe + b * count_pos * pos + c * count_neg * neg)
                  for a in (-1, 1) for b in (-1, 1) for c in (-1, 1))
      assert total < 1e-3 * (probe + count_pos * pos + count_neg * neg), (key, j, total)


def test_grpo_by_hand(data):
  # The weight per unit |A| is e^s inside the clip and 0 past it: the ratio to s = 0 is e^s.
  s = np.asarray(data["s"])
  zero = data["s"].index(0.0)
  obj = data["objectives"]["grpo"]
  for entry in obj["settings"]:
    hp = entry["setting"]
    if hp["clip_ratio_c"] is not None or hp["delta"] is not None:
      continue
    for key, sign in (("8,4,negative", "negative"), ("8,4,positive", "positive"),
                      ("16,1,positive", "positive")):
      probe = np.asarray(explorer_checks.stored(data, "grpo", hp, key)["probe"])
      ratio = np.exp(s)
      open_ = ratio > 1 - hp["epsilon_low"] if sign == "negative" else ratio < 1 + hp["epsilon_high"]
      want = np.where(open_, probe[zero] * ratio, 0.0)
      np.testing.assert_allclose(probe, want, rtol=1e-4, err_msg=f"{hp} {key}")
  # A lone correct rollout of 16 carries |A| = 15 / sqrt(15) times the others' |A| (ddof 1:
  # mean 1/16; |A+| / |A-| = (15/16) / (1/16)).
  default = explorer_checks.stored(data, "grpo", {c: obj["defaults"][c] for c in obj["controls"]},
                                   "16,1,positive")
  assert default["probe"][zero] / default["neg"][zero] == pytest.approx(15, rel=1e-4)
  one_sided = explorer_checks.stored(data, "grpo", {c: obj["defaults"][c] for c in obj["controls"]},
                                     "8,8,positive")
  assert max(one_sided["probe"]) == 0 and not math.isnan(one_sided["probe"][0])


@pytest.mark.skipif(browser.chromium() is None, reason="no Chromium (make test installs "
                    "Debian's chromium where it can)")
def test_page_in_headless_chromium(tmp_path):
  # The page's script and data outside the site build: the same files the build copies.
  (tmp_path / "_static").mkdir()
  (tmp_path / "explorer").mkdir()
  shutil.copy(os.path.join(ROOT, "docs", "_static", "explorer.js"), tmp_path / "_static")
  (tmp_path / "_static" / "explorer_data.js").write_text(explorer_checks.data_script())
  (tmp_path / "explorer" / "index.html").write_text(
      '<html><body><div id="explorer"></div><script src="../_static/explorer_data.js"></script>'
      '<script src="../_static/explorer.js"></script></body></html>')
  with browser.Browser() as b:
    explorer_checks.run(b, f"file://{tmp_path}/explorer/index.html")
