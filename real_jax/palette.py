"""One colour per objective, for every figure the library draws.

Declared once, here, so that GRPO is the same red in Figure 1, the atlas, a
sweep's curves and every panel of the study; the gradient analysis, the
reports and the notebooks all read it. An objective you register carries its
own colour (`losses.register(..., color=)`), or gets one of `RESERVE` in the
order of registration, so that it too has one colour in every figure.
`tests/test_layers.py` checks that every objective and every gradient-analysis
configuration has a colour, and that no two share one.
"""

__all__ = ["COLORS", "RESERVE", "color"]

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


# For registered objectives without a colour of their own; none is in COLORS.
RESERVE: tuple[str, ...] = ("#00441b", "#67000d", "#3f007d", "#7f2704", "#014636", "#fb9a99",
                            "#b15928", "#cab2d6")


def color(name: str, default: str | None = None) -> str | None:
  """The colour of objective `name` (case-insensitive); `default` for any other label.

  >>> color("GRPO"), color("tau=0.5")
  ('#d62728', None)
  """
  key = str(name).lower()
  if key in COLORS:
    return COLORS[key]
  # Loaded here, not at import: the reports and notebooks read the table alone.
  from real_jax.losses import _registry  # noqa: PLC0415
  if name not in _registry.registered() and ":" not in str(name):
    return default
  own = _registry.spec(name).color  # "package.module:attribute" is imported here
  unset = [n for n in _registry.registered() if _registry.spec(n).color is None]
  return own if own is not None else RESERVE[unset.index(name) % len(RESERVE)]
