r"""The gradient explorer's data: every objective's autodiff weights on a grid of its controls.

The browser page (docs/explorer/index.md) only selects and draws what this module
computes; it re-implements no formula. The setting is Figure 1's: one group,
one token per rollout, on-policy except for a probe rollout whose score
`s = log pi - log pi_old` moves along `S_GRID`. For each objective, each
setting of its controls and each group (size `G`, `k` correct, the probe
correct or wrong), it stores as functions of `s`:

- `probe`: the probe's gradient weight from `jax.grad` of the loss;
- `closed`: the same weight from the closed form (`advantage_weights`,
  `label_weights`), drawn dashed on top;
- `pos`, `neg`: the weight of every other correct and every other wrong
  rollout (they are alike: all on-policy), from the same gradient.

The weight of a rollout is what it receives inside its group, the quantity
of docs/derivations.md (for an objective a researcher registers with its
closed form, `losses.register(name, fn, weights=...)`, it is `|dL/ds_k|` in
this batch of one group): for the label-based objectives `|dL_g / dsbar_k|`
(the batch normaliser divided out), for the advantage-weighted ones
`|dL/ds_k| / alpha_k`, the aggregation factor divided out and `|A_k|` kept, so
that the bars of one group compare (Figure 1 draws these objectives per unit
`|A|`: divide by the group's `|A_k|` to read it there).

The controls: `tau` for the label-based objectives; `epsilon_low` and
`epsilon_high` (each objective's default times `EPSILON_SCALES`), the dual
clip `clip_ratio_c` and the two-sided bound `delta` where an objective takes
them. The clip range's two ends are crossed; `clip_ratio_c` and `delta` move
one at a time from the defaults (their product with the rest would pass the
3 MB the page may load).

  python -m real_jax.grad_analysis.explorer --out docs/explorer/data \
      [--config experiments/configs/mechanism.py]   # its registered objectives too

Arrays are stored once (`arrays`), at 5 significant digits, and referred to
by index: a curve that several groups or settings share (the on-policy
rollouts' flat weights, a one-sided group's zeros, a setting that leaves a
side of the clip untouched) is stored once.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from real_jax import losses
from real_jax import palette
from real_jax.grad_analysis import _autodiff
from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis import _figures

__all__ = ["S_GRID", "GROUPS", "TAUS", "EPSILON_SCALES", "DUAL_CLIPS", "DELTAS", "OBJECTIVES",
           "CROSSED", "controls", "settings", "weights", "registered_with_closed_forms",
           "build", "write"]

S_GRID = tuple(round(x, 2) for x in np.linspace(-1.6, 1.6, 33))
# Group size -> the numbers of correct rollouts offered (one-sided groups included).
GROUPS = {4: (0, 1, 2, 3, 4), 6: (0, 1, 2, 3, 4, 5, 6), 8: (0, 1, 2, 4, 6, 7, 8),
          12: (0, 1, 3, 6, 9, 11, 12), 16: (0, 1, 4, 8, 12, 15, 16)}
G_PAD = max(GROUPS)
TAUS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
EPSILON_SCALES = (0.5, 0.75, 1.0, 1.4, 2.0)
DUAL_CLIPS = (None, 2.0, 3.0, 5.0, 10.0)  # None: no dual clip
DELTAS = (None, 2.0, 3.0, 4.0, 8.0)  # None: no two-sided bound
OBJECTIVES = tuple(losses.LABEL_LOSSES) + tuple(losses.ADVANTAGE_LOSSES)
SIGNIFICANT = 5


def controls(name: str) -> dict[str, tuple]:
  """The explorer's controls of objective `name`: `{hyperparameter: values}`, default included."""
  taken = losses.hyperparameters(name)
  found = losses.defaults(name)
  out: dict[str, tuple] = {}
  if "tau" in taken:
    out["tau"] = TAUS
  for eps in ("epsilon_low", "epsilon_high"):
    if eps in taken and found.get(eps) is not None:
      out[eps] = tuple(float(f"{found[eps] * m:.6g}") for m in EPSILON_SCALES)
  if "clip_ratio_c" in taken:
    out["clip_ratio_c"] = DUAL_CLIPS
  if "delta" in taken:
    out["delta"] = DELTAS
  return out


def _default(name: str, control: str):
  return losses.defaults(name).get(control, 0.5 if control == "tau" else None)


# Controls crossed with each other; the others move one at a time from the defaults.
CROSSED = ("tau", "epsilon_low", "epsilon_high")


def settings(name: str) -> list[dict[str, Any]]:
  """Every combination of the crossed controls (the rest at their defaults), then
  each other control moved alone to each of its other values."""
  own = controls(name)
  base = {c: _default(name, c) for c in own}
  crossed = [c for c in own if c in CROSSED]
  out = [{**base, **dict(zip(crossed, values, strict=True))}
         for values in itertools.product(*(own[c] for c in crossed))]
  for c in own:
    if c not in CROSSED:
      out += [{**base, c: v} for v in own[c] if v != base[c]]
  return out


@functools.cache
def _cases() -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, int, str], ...]]:
  """Every (G, k, probe sign) with a probe of that sign, as padded rewards and presence."""
  keys, rewards, present = [], [], []
  for g, ks in GROUPS.items():
    for k in ks:
      for sign in ("positive", "negative"):
        if (sign == "positive" and k == 0) or (sign == "negative" and k == g):
          continue
        # The probe is rollout 0; the other correct ones follow it, then the wrong ones.
        correct = np.zeros(G_PAD, bool)
        if sign == "positive":
          correct[:k] = True
        else:
          correct[1:k + 1] = True
        keys.append((g, k, sign))
        rewards.append(correct.astype(np.float64))
        present.append(np.arange(G_PAD) < g)
  return np.asarray(rewards), np.asarray(present), tuple(keys)


@functools.cache
def _program(name: str, frozen: tuple):
  """`(s [S], rewards [C, G_PAD], present [C, G_PAD]) -> (auto, closed) [C, S, G_PAD]`, compiled."""
  hp = dict(frozen)
  label = name in cf.LABEL_FORMS
  kwargs = {k: v for k, v in hp.items() if v is not None}

  def one(s, rewards, present):
    mask = present[None, :, None]
    old = jnp.full((1, G_PAD, 1), -1.0)
    logp = old + jnp.where(jnp.arange(G_PAD) == 0, s, 0.0)[None, :, None]
    r = rewards[None]
    if label:
      auto = _autodiff.rollout_weights(name, logp, old, mask, r, **kwargs)[0]
      closed = cf.label_weights(name, logp, old, mask, r, **kwargs)
      return jnp.abs(auto) * closed.normaliser, jnp.abs(closed.group_weights[0])
    auto = _autodiff.token_gradients(name, logp, old, mask, r, **kwargs)[0, :, 0]
    if name not in cf.CONFIGURATIONS:  # a registered objective: its own closed form
      closed = losses.spec(name).weights(logp, old, mask, r, **kwargs)
      closed = closed[0] if isinstance(closed, tuple) else closed  # (weights, terms)
      return jnp.abs(auto), jnp.abs(closed[0, :, 0])
    closed = cf.advantage_weights(name, logp, old, mask, r, **kwargs)
    agg = jnp.where(present, closed.agg_factor[0, :, 0], 1.0)
    return jnp.abs(auto) / agg, jnp.abs(closed.token_weights[0, :, 0]) / agg

  over_s = jax.vmap(one, in_axes=(0, None, None))
  return jax.jit(jax.vmap(over_s, in_axes=(None, 0, 0)))


def weights(name: str, setting: dict, dtype=jnp.float64) -> dict[tuple[int, int, str], dict]:
  """`{(G, k, sign): {"probe", "closed", "pos", "neg": [S] or None}}` for one setting.

  `pos` / `neg` are None where the group has no other correct / wrong rollout.
  Computed in `dtype` (float64 needs `jax_enable_x64`).
  """
  rewards, present, keys = _cases()
  s = jnp.asarray(S_GRID, dtype)
  auto, closed = _program(name, tuple(sorted(setting.items())))(
      s, jnp.asarray(rewards, dtype), jnp.asarray(present))
  auto, closed = np.asarray(auto, np.float64), np.asarray(closed, np.float64)
  out = {}
  for i, (g, k, sign) in enumerate(keys):
    pos = [j for j in range(1, g) if rewards[i, j] > 0.5]
    neg = [j for j in range(1, g) if rewards[i, j] <= 0.5]
    entry = {"probe": auto[i, :, 0], "closed": closed[i, :, 0]}
    for side, members in (("pos", pos), ("neg", neg)):
      if not members:
        entry[side] = None
        continue
      block = auto[i][:, members]
      if not np.allclose(block, block[:, :1], rtol=1e-9, atol=1e-300):
        raise AssertionError(f"{name} {setting}: the other {side} rollouts of (G={g}, k={k}) "
                             "differ, but they are alike")
      entry[side] = block[:, 0]
    out[(g, k, sign)] = entry
  return out


def _round(values: np.ndarray) -> list[float]:
  return [float(f"{v:.{SIGNIFICANT}g}") for v in values]


class _Arrays:
  """Arrays stored once, referred to by index."""

  def __init__(self):
    self.items: list[list[float]] = []
    self._index: dict[tuple, int] = {}

  def add(self, values) -> int | None:
    if values is None:
      return None
    rounded = _round(values)
    key = tuple(rounded)
    if key not in self._index:
      self._index[key] = len(self.items)
      self.items.append(rounded)
    return self._index[key]


def build(objectives=OBJECTIVES, *, progress=print) -> dict:
  """The explorer's data, as the JSON the page reads."""
  arrays = _Arrays()
  out = {"s": list(S_GRID), "groups": {str(g): list(ks) for g, ks in GROUPS.items()},
         "significant_digits": SIGNIFICANT, "objectives": {}}
  start = time.perf_counter()
  for n, name in enumerate(objectives, 1):
    own = controls(name)
    entries = []
    for setting in settings(name):
      cases = weights(name, setting)
      entries.append({"setting": setting, "cases": {
          f"{g},{k},{sign}": [arrays.add(c["probe"]), arrays.add(c["closed"]),
                              arrays.add(c["pos"]), arrays.add(c["neg"])]
          for (g, k, sign), c in cases.items()}})
    out["objectives"][name] = {
        "label": _figures._label(name), "family": "label" if name in cf.LABEL_FORMS else "advantage",
        "color": palette.color(name), "controls": {c: list(v) for c, v in own.items()},
        "defaults": {c: _default(name, c) for c in own}, "settings": entries}
    if progress:
      progress(f"  [{n}/{len(objectives)}] {name}: {len(entries)} settings "
               f"({time.perf_counter() - start:.0f}s)")
  out["arrays"] = arrays.items
  return out


def write(data: dict, out: str) -> str:
  """Writes `explorer.json` (compact) into `out`; returns its path."""
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, "explorer.json")
  with open(path, "w") as f:
    json.dump(data, f, separators=(",", ":"), allow_nan=False)
  return path


def registered_with_closed_forms() -> tuple[str, ...]:
  """The objectives registered in this process that carry a closed form."""
  return tuple(n for n in losses.registered() if losses.spec(n).weights is not None)


def main(argv=None) -> None:
  import argparse  # noqa: PLC0415
  import runpy  # noqa: PLC0415

  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="docs/explorer/data", help="folder of explorer.json")
  parser.add_argument("--config", action="append", default=[],
                      help="a Python file that registers objectives (losses.register with "
                           "weights=): they are drawn beside the shipped ones")
  args = parser.parse_args(argv)
  for path in args.config:
    if not os.path.isfile(path):
      parser.error(f"--config: no file {path!r}")
    runpy.run_path(path)
  jax.config.update("jax_enable_x64", True)
  path = write(build(OBJECTIVES + registered_with_closed_forms()), args.out)
  print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")


if __name__ == "__main__":
  main()
