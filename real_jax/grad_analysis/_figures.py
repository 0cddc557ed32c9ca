"""The paper's Figure 1 (and its sibling for GRAD, BCE, product-style), from autodiff.

Each curve is the autodiff gradient of the batched loss of `real_jax.losses`
for one probe rollout whose relative log-probability `s` moves while the rest
of its group stays on-policy (paper.md: tau = 0.5, a group of 8 split 4/4, so
C+ = C- = 4; GRPO with |A| = 1, eps = 0.2); the closed forms are overlaid dashed.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt

from real_jax.grad_analysis import _closed_forms as cf  # noqa: E402
from real_jax.grad_analysis import _sweep  # noqa: E402

STYLE = {"grpo": ("tab:red", "GRPO (|A| = 1, $\\epsilon$ = 0.2)"),
         "dapo": ("tab:brown", "DAPO (|A| = 1, $\\epsilon$ = 0.2/0.28)"),
         "real": ("tab:blue", "REAL ($\\tau$ = 0.5, $C^\\pm$ = 4)"),
         "grad": ("tab:green", "GRAD ($\\tau$ = 0.5; = REAL on positives, 0 on negatives)"),
         "bce": ("tab:purple", "BCE ($\\tau$ = 0.5, $C^\\pm$ = 1)"),
         "real_product": ("tab:orange", "product-style ($\\tau$ = 0.5)")}
FIGURE1 = ("grpo", "real")
VARIANTS = ("real", "grad", "bce", "real_product")


def figure1_curves(names=FIGURE1, dtype=jnp.float64) -> dict:
  """`{name: {sign: (s, autodiff |W|, closed-form |W|)}}` in the Figure 1 setting."""
  curves = _sweep.figure1_curves()
  out = {}
  for name in names:
    results = _sweep.run_curves(name, [curves["positive"], curves["negative"]], dtype)
    out[name] = dict(zip(_sweep.SIGNS, results))
  return out


def _panel(ax, curves, names, sign, title):
  for name in names:
    color, label = STYLE[name]
    s, auto, closed = curves[name][sign]
    ax.plot(s, auto, color=color, lw=3.0 if name == "grad" else 2.2, label=f"{label}: autodiff",
            zorder=1 if name == "grad" else 2)
    ax.plot(s, closed, color="k", lw=1.0, ls="--", alpha=0.8)
  if "grpo" in names:
    eps = cf.CLIPPED_DEFAULTS["grpo"]["epsilon_high"]
    for edge, text in ((math.log(1 + eps), "log(1+$\\epsilon$)"),
                       (math.log(1 - eps), "log(1-$\\epsilon$)")):
      ax.axvline(edge, color="tab:red", ls=":", lw=1)
      ax.text(edge, 0.97, text, transform=ax.get_xaxis_transform(), rotation=90,
              va="top", ha="right", fontsize=8, color="tab:red")
  if any(n in ("real", "grad", "bce", "real_product") for n in names):
    ax.axhline(1 / _sweep.FIG1_TAU, color="gray", ls="-.", lw=1)
    ax.text(_sweep.FIG1_S[0], 1 / _sweep.FIG1_TAU, " bound 1/$\\tau$", va="bottom",
            fontsize=8, color="gray")
  ax.set_title(title)
  ax.set_xlabel("relative log-probability $s = \\log\\pi_\\theta - \\log\\pi_{old}$")
  ax.set_ylabel("gradient magnitude $|\\partial L / \\partial s|$")
  ax.set_xlim(*_sweep.FIG1_S)
  ax.set_ylim(0, 1.12 * max(ax.get_ylim()[1], 1 / _sweep.FIG1_TAU))
  ax.grid(alpha=0.3)


def plot_figure(curves: dict, names, path: str, suptitle: str) -> None:
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
  _panel(axes[0], curves, names, "positive", "(a) positive samples (r = 1, A > 0)")
  _panel(axes[1], curves, names, "negative", "(b) negative samples (r = 0, A < 0)")
  handles, labels = axes[0].get_legend_handles_labels()
  handles.append(matplotlib.lines.Line2D([], [], color="k", ls="--", lw=1))
  labels.append("closed form (paper.md)")
  fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
  fig.suptitle(suptitle)
  fig.tight_layout(rect=(0, 0.1, 1, 1))
  fig.savefig(path, dpi=130)
  plt.close(fig)


def plot_figure1(path: str, curves: dict | None = None) -> None:
  """GRPO against REAL, as the paper's Figure 1 (curves computed if not given)."""
  curves = curves or figure1_curves(FIGURE1)
  plot_figure(curves, FIGURE1, path,
              "Gradient weight against relative log-probability (paper Fig. 1, from autodiff)")


def plot_variants(path: str, curves: dict | None = None) -> None:
  """GRAD, BCE and product-style in the same layout, REAL for reference."""
  curves = curves or figure1_curves(VARIANTS)
  plot_figure(curves, VARIANTS, path,
              "Label-based objectives: gradient weight per rollout, on-policy group of 8 (4/4)")
