"""Every real_jax objective as a Tunix policy loss.

The first use of a name that needs Tunix (`LabelGRPOConfig`,
`RealJaxGRPOConfig`, `policy_loss`, `register`) loads Tunix and registers, in
its function registry:

* every objective of `real_jax.losses` as `real_jax_<name>`
  (`real_jax_real`, `real_jax_grpo`, `real_jax_cispo`, ...), a prefix no Tunix
  loss uses, so that real_jax's verified GRPO, DAPO or GSPO can run next to
  Tunix's own `grpo`; the label-based ones also keep their bare names
  (`real`, `grad`, `bce`, `real_product`), so that
  `GRPOConfig(policy_loss_fn="real", ...)` trains with REAL through Tunix's
  `GRPOLearner` (sharded models, fast rollouts, multi-host TPU);
* an objective you registered (`real_jax.losses.register`, or
  `"package.module:function"`) as `real_jax_<name>` on first use by
  `RealJaxGRPOConfig(policy_loss_fn="real_jax_<name>")` (or
  `register_objective(name)`), the same way as ours;
* the advantage estimator `binary_labels`, which passes 0/1 rewards through
  unchanged after checking on the host that they are 0/1, and
  `real_jax_rewards`, which passes any rewards through unchanged: the
  advantage-weighted objectives compute their group advantages themselves
  (any of `real_jax.losses.ADVANTAGE_ESTIMATORS`, chosen with
  `loss_kwargs={"advantage": ...}`, see `RealJaxGRPOConfig`), exactly as
  `real_jax.losses` does.

The loss computes per-token log-probabilities exactly as Tunix's own GRPO loss
does (`tunix.rl.common.compute_per_token_logps`, with the rollout
temperature), reshapes Tunix's flat rows `[B*G, T]` into groups `[B, G, T]`,
derives the labels from the rewards and calls `real_jax.losses` unchanged. The
returned aux holds the keys Tunix logs (`kl`, `pg_clipfrac`) plus
real_jax's diagnostics under `real_jax/...`.

Labels: a rollout is positive when its advantage is > 0. With the
`binary_labels` estimator (the default of `LabelGRPOConfig`) the advantage is
the 0/1 reward itself. With Tunix's `grpo`, `rloo` or `drgrpo` estimators and
binary rewards, the advantage of a correct rollout in a mixed group is > 0 and
of a wrong one < 0; a group whose rollouts all have the same reward has
advantage 0 everywhere and contributes nothing, as under its true labels. Use
`binary_labels` when you want non-binary rewards rejected rather than
thresholded at their group mean.

Example:
  >>> import real_jax.integrations.tunix as rj_tunix
  >>> config = rj_tunix.LabelGRPOConfig(policy_loss_fn="real", tau=0.5, num_generations=8)
  >>> config.advantage_estimator, config.beta
  ('binary_labels', 0.0)
  >>> baseline = rj_tunix.RealJaxGRPOConfig(policy_loss_fn="real_jax_dapo", num_generations=8,
  ...                                       loss_kwargs={"clip_ratio_c": 3.0})
  >>> baseline.advantage_estimator
  'real_jax_rewards'

  Either config then drives Tunix's learner:
  `GRPOLearner(rl_cluster=cluster, algo_config=config, reward_fns=[real_jax.tasks.math.reward_fn])`.

The rest of the module (the label and advantage computations, the
diagnostics, the tokenizer adapter) is plain JAX: importing it loads neither
Tunix nor orbax nor matplotlib. Tunix itself needs the `tunix` extra
(`pip install -e '.[tunix]'`); the adapter is written against google-tunix 0.1.7.
"""

from __future__ import annotations

from typing import Any

from real_jax.integrations._adapter import DEFAULT_TAU
from real_jax.integrations._adapter import DIAGNOSTICS
from real_jax.integrations._adapter import LABEL_ESTIMATOR
from real_jax.integrations._adapter import OBJECTIVES
from real_jax.integrations._adapter import PREFIX
from real_jax.integrations._adapter import REGISTERED
from real_jax.integrations._adapter import REWARD_ESTIMATOR
from real_jax.integrations._adapter import CharTokenizerAdapter
from real_jax.integrations._adapter import advantage_diagnostics
from real_jax.integrations._adapter import advantage_loss
from real_jax.integrations._adapter import binary_labels
from real_jax.integrations._adapter import diagnostics
from real_jax.integrations._adapter import group_rows
from real_jax.integrations._adapter import label_loss
from real_jax.integrations._adapter import labels_from_advantages
from real_jax.integrations._adapter import log_diagnostics
from real_jax.integrations._adapter import raw_rewards
from real_jax.integrations._adapter import takes_tau
from real_jax.integrations._adapter import tunix_name

# The names that need Tunix itself. Tunix loads orbax and much else on import,
# so this module loads it (and registers the losses) only when one is first used.
_ENGINE = ("LabelGRPOConfig", "RealJaxGRPOConfig", "policy_loss", "register",
           "register_objective")

__all__ = [*_ENGINE,
    "OBJECTIVES",
    "PREFIX",
    "REGISTERED",
    "LABEL_ESTIMATOR",
    "REWARD_ESTIMATOR",
    "DEFAULT_TAU",
    "DIAGNOSTICS",
    "binary_labels",
    "raw_rewards",
    "takes_tau",
    "tunix_name",
    "group_rows",
    "labels_from_advantages",
    "label_loss",
    "advantage_loss",
    "advantage_diagnostics",
    "diagnostics",
    "log_diagnostics",
    "CharTokenizerAdapter",
]


def __getattr__(name: str) -> Any:
  if name in _ENGINE:
    from real_jax.integrations import _tunix_engine  # noqa: PLC0415
    return getattr(_tunix_engine, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_ENGINE))
