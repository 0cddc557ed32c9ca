"""The paper's Figure 1, its sibling for GRAD, BCE, product-style, and the atlas.

Each curve is the autodiff gradient of the batched loss of `real_jax.losses`
for one probe rollout whose relative log-probability `s` moves while the rest
of its group stays on-policy (docs/derivations.md, "Figure 1": tau = 0.5, a
group of 8 split 4/4, so C+ = C- = 4; the advantage-weighted objectives per
unit |A|, without the aggregation factor); the closed forms are overlaid
dashed. The atlas draws every objective in that layout.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from real_jax import losses
from real_jax import palette
from real_jax.grad_analysis import _cases
from real_jax.grad_analysis import _closed_forms as cf
from real_jax.grad_analysis import _sweep


def _pyplot():
  """matplotlib's pyplot, loaded when a figure is first drawn, not when the package is."""
  import matplotlib.pyplot as plt  # noqa: PLC0415
  return plt


# The legends of the configurations that are not a loss at its defaults.
_CONFIGURATION_LABELS = {
    "grpo_dual_clip": lambda cfg: f"dual-clip GRPO ({cf.eps_label(cfg)}, c = {cfg['clip_ratio_c']:g})",
    "grpo_delta": lambda cfg: f"two-sided GRPO ({cf.eps_label(cfg)}, $\\delta$ = {cfg['delta']:g})",
}


def _label(name: str) -> str:
  """A curve's legend, its defaults read from the losses' signatures."""
  if name in cf.LABEL_FORMS:
    return cf.LABEL_FORMS[name].label
  if name not in cf.CONFIGURATIONS:  # an objective of yours: its label, else its name
    yours = name in losses.registered() or ":" in name  # "package.module:attribute" too
    return (yours and losses.spec(name).label) or name
  loss, cfg = cf.configuration(name)
  if name in _CONFIGURATION_LABELS:
    return _CONFIGURATION_LABELS[name](cfg)
  return cf.closed_form(loss).label(cfg)


FIGURE1 = ("grpo", "real")
VARIANTS = ("real", "grad", "bce", "real_product")
# The atlas's columns: the label-based objectives, the PPO-clip family, the
# objectives since the paper (Dr.GRPO and GRPO with RLOO advantages draw
# GRPO's curve per unit |A|, so they are left out of the picture).
# LUSPO draws GSPO's curve per unit |A| and length, and the estimators and
# the bnpo and NLL options GRPO's, so they are left out too.
ATLAS = (("label-based", ("real", "grad", "bce", "real_product")),
         ("PPO clip", ("grpo", "dapo", "gspo", "grpo_dual_clip", "grpo_delta")),
         ("since the paper", ("cispo", "sapo", "gmpo", "gpg", "vespo", "topr")),
         ("trust regions and penalties", ("dppo_tv", "dppo_kl", "clip_cov", "kl_cov", "dro")))


def figure1_curves(names=FIGURE1, dtype=jnp.float64) -> dict:
  """`{name: {sign: (s, autodiff |W|, closed-form |W|)}}` in the Figure 1 setting."""
  curves = _cases.figure1_probes()
  out = {}
  for name in names:
    results = _sweep.run_curves(name, [curves["positive"], curves["negative"]], dtype)
    out[name] = dict(zip(_cases.SIGNS, results, strict=True))
  return out


# Layout: curves drawn wider, underneath the one they coincide with (GRAD with
# REAL on positives, dual-clip GRPO with GRPO below c), and the objective whose
# clip edges a panel marks when it is drawn.
_DRAWN_UNDER = ("grad", "grpo_dual_clip")
_EDGES_MARKED = "grpo"


def _panel(ax, curves, names, sign, title):
  for name in names:
    s, auto, closed = curves[name][sign]
    wide = name in _DRAWN_UNDER
    ax.plot(s, auto, color=palette.color(name), lw=3.4 if wide else 2.0,
            label=f"{_label(name)}: autodiff", zorder=1 if wide else 2)
    ax.plot(s, closed, color="k", lw=1.0, ls="--", alpha=0.8)
  if _EDGES_MARKED in names:
    eps = cf.ADVANTAGE_DEFAULTS[_EDGES_MARKED]["epsilon_high"]
    for edge, text in ((math.log(1 + eps), "log(1+$\\epsilon$)"),
                       (math.log(1 - eps), "log(1-$\\epsilon$)")):
      ax.axvline(edge, color="tab:red", ls=":", lw=1)
      ax.text(edge, 0.97, text, transform=ax.get_xaxis_transform(), rotation=90,
              va="top", ha="right", fontsize=8, color="tab:red")
  label_based = any(n in cf.LABEL_FORMS for n in names)
  if label_based:
    ax.axhline(1 / _cases.FIG1_TAU, color="gray", ls="-.", lw=1)
    ax.text(_cases.FIG1_S[0], 1 / _cases.FIG1_TAU, " bound 1/$\\tau$", va="bottom",
            fontsize=8, color="gray")
  ax.set_title(title)
  ax.set_xlabel("relative log-probability $s = \\log\\pi_\\theta - \\log\\pi_{old}$")
  ax.set_ylabel("gradient magnitude $|\\partial L / \\partial s|$")
  ax.set_xlim(*_cases.FIG1_S)
  ax.set_ylim(0, 1.12 * max(ax.get_ylim()[1], 1 / _cases.FIG1_TAU if label_based else 0))
  ax.grid(alpha=0.3)


def plot_figure(curves: dict, names, path: str, suptitle: str) -> None:
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
  _panel(axes[0], curves, names, "positive", "(a) positive samples (r = 1, A > 0)")
  _panel(axes[1], curves, names, "negative", "(b) negative samples (r = 0, A < 0)")
  handles, labels = axes[0].get_legend_handles_labels()
  handles.append(plt.Line2D([], [], color="k", ls="--", lw=1))
  labels.append("closed form (docs/derivations.md)")
  fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
  fig.suptitle(suptitle)
  # Fixed margins: tight_layout measured every tick label, a third of the time.
  fig.subplots_adjust(left=0.06, right=0.99, top=0.88, bottom=0.24, wspace=0.18)
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


def plot_atlas(path: str, curves: dict, yours: dict | None = None) -> None:
  """Every objective in Figure 1's layout: rows positives/negatives, a column per family.

  `curves[name][sign] = (s, autodiff |W|, closed-form |W|)`, as
  `run_sweep(...).figure_curves`. Label-based objectives are drawn per group
  (`|dL_g/dsbar|`, bound 1/tau), the others per unit `|A|` without the
  aggregation factor (GRPO's `e^s` where its clip is open). `yours`, in the
  same form (`{name: check_objective(name).curves}`), adds a column of your
  own objectives, drawn as `check_objective` measures them (`|dL/ds|` of the
  probe times the 4 groups of its batch).
  """
  plt = _pyplot()
  columns = list(ATLAS) + ([("yours", tuple(yours))] if yours else [])
  curves = {**curves, **(yours or {})}
  fig, axes = plt.subplots(2, len(columns), figsize=(6.0 * len(columns), 9.2), sharex=True,
                           squeeze=False)
  for col, (family, names) in enumerate(columns):
    names = [n for n in names if n in curves]
    for row, (sign, what) in enumerate((("positive", "positives (r = 1, A > 0)"),
                                        ("negative", "negatives (r = 0, A < 0)"))):
      ax = axes[row, col]
      if not names:
        ax.set_visible(False)
        continue
      _panel(ax, curves, names, sign, f"{family}: {what}")
      if family == "yours":
        ax.set_ylabel("$|\\partial L / \\partial s|$ (x 4 groups per batch)")
      elif family != "label-based":
        ax.set_ylabel("$|\\partial L / \\partial s|$ per unit $|A|$")
      ax.legend(fontsize=7.5, loc="upper left" if sign == "negative" else "upper right")
  handle = plt.Line2D([], [], color="k", ls="--", lw=1)
  fig.legend([handle], ["closed form (docs/derivations.md), dashed, under every curve"],
             loc="lower center", frameon=False, fontsize=9)
  fig.suptitle("The gradient atlas: weight against relative log-probability, every objective "
               "at its defaults, from autodiff (probe rollout in an on-policy group of 8, 4/4)")
  fig.subplots_adjust(left=0.035, right=0.995, top=0.93, bottom=0.08, wspace=0.16, hspace=0.2)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_custom(path: str, name: str, curves: dict, title: str | None = None) -> None:
  """Figure 1's two panels for an objective checked by `check_objective`."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
  for ax, (sign, what) in zip(axes, (("positive", "(a) positive samples (r = 1)"),
                                     ("negative", "(b) negative samples (r = 0)")), strict=True):
    s, auto, closed = curves[sign]
    ax.plot(s, auto, color=palette.color(name, "tab:blue"), lw=2.2,
            label=f"{_label(name)}: autodiff")
    ax.plot(s, closed, color="k", lw=1.0, ls="--", alpha=0.8, label="your closed form")
    ax.set_title(what)
    ax.set_xlabel("relative log-probability $s = \\log\\pi_\\theta - \\log\\pi_{old}$")
    ax.set_ylabel("$|\\partial L / \\partial s|$ (x 4 groups per batch)")
    ax.set_xlim(*_cases.FIG1_S)
    ax.set_ylim(0, 1.12 * max(ax.get_ylim()[1], 1e-12))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
  fig.suptitle(title or f"{name}: gradient weight against relative log-probability "
               "(probe in an on-policy group of 8, 4/4)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
