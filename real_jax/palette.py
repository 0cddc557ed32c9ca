"""One colour per objective, for every figure the library draws.

Declared once, here, so that GRPO is the same red in Figure 1, the atlas, a
sweep's curves and every panel of the study. The module imports nothing:
the gradient analysis, the reports and the notebooks all read it.
`tests/test_layers.py` checks that every objective and every gradient-analysis
configuration has a colour, and that no two share one.
"""

__all__ = ["COLORS", "color"]

COLORS: dict[str, str] = {
    # the label-based objectives: cool colours, REAL blue
    "real": "#1f77b4",
    "grad": "#2ca02c",
    "bce": "#9467bd",
    "real_product": "#ff7f0e",
    # the PPO-clip family: reds and browns, GRPO red
    "grpo": "#d62728",
    "grpo_dual_clip": "#7f7f7f",
    "grpo_rloo": "#ff9896",
    "dapo": "#8c564b",
    "dr_grpo": "#bcbd22",
    "gspo": "#e377c2",
    # the objectives since the paper
    "cispo": "#17becf",
    "sapo": "#393b79",
    "gmpo": "#8c6d31",
    "gpg": "#000000",
    # Atlas II: the engines' objectives since, and the options and estimators
    "luspo": "#c51b7d",
    "dppo_tv": "#1b9e77",
    "dppo_kl": "#66a61e",
    "clip_cov": "#e7298a",
    "kl_cov": "#7570b3",
    "dro": "#a6761d",
    "vespo": "#e6ab02",
    "topr": "#08519c",
    "grpo_delta": "#fdae6b",
    "grpo_bnpo": "#843c39",
    "grpo_positive_nll": "#31a354",
    "grpo_reinforce_pp": "#6baed6",
    "grpo_opo": "#9e9ac8",
    "grpo_passk": "#636363",
}


def color(name: str, default: str | None = None) -> str | None:
  """The colour of objective `name` (case-insensitive); `default` for any other label.

  >>> color("GRPO"), color("tau=0.5")
  ('#d62728', None)
  """
  return COLORS.get(str(name).lower(), default)
