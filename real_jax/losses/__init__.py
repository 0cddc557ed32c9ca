"""Pure-functional RLVR losses.

The paper's seven (REAL, GRAD, BCE, product-style, GRPO, DAPO, GSPO), Dr.GRPO,
and the objectives since: CISPO, SAPO, GMPO, GPG, LUSPO, DPPO (TV and KL),
Clip-Cov, KL-Cov, DRO, VESPO and TOPR; as options, dual-clip PPO (`clip_ratio_c`),
INTELLECT-2's two-sided clip (`delta`), VAPO's positive NLL
(`positive_nll`) and TRL's `bnpo` aggregation; as advantage estimators
(`advantage=`), RLOO, Dr.GRPO, REINFORCE++-baseline, OPO and pass@k.

Every batched loss takes `logp, old_logp, mask: [B, G, T]` and `rewards: [B, G]`
and returns `(loss, aux)`. `rollout_correction` adapts a batch to any of
them when the sampler's policy differs from the trainer's. Each is built from a function of one rollout group
(`*_group`) that is `jax.vmap`-ed over groups. docs/derivations.md gives the
formulas and conventions. `LOSSES` names every objective; `defaults(name)`
gives its default hyperparameters, read from its signature. `register(name,
fn)` adds your own objective to `LOSSES` (or name it
`"package.module:function"` in a config, imported on use): the trainer, the
sweeps, the Tunix adapter and `grad_analysis.check_objective` then take it as
they take ours.
"""

from real_jax.losses._advantage import AGG_MODES
from real_jax.losses._advantage import KL_TYPES
from real_jax.losses._advantage import AdvantageLossAux
from real_jax.losses._advantage import advantage_objective
from real_jax.losses._advantage import aggregate
from real_jax.losses._advantage import kl_penalty
from real_jax.losses._advantage import positive_nll_loss
from real_jax.losses._clipped import clipped_surrogate_group
from real_jax.losses._clipped import dapo
from real_jax.losses._clipped import dr_grpo
from real_jax.losses._clipped import grpo
from real_jax.losses._clipped import gspo
from real_jax.losses._clipped import luspo
from real_jax.losses._common import ADVANTAGE_ESTIMATORS
from real_jax.losses._common import batch_advantages
from real_jax.losses._common import group_advantages
from real_jax.losses._common import sequence_scores
from real_jax.losses._correction import CORRECTIONS
from real_jax.losses._correction import DEFAULT_CAP
from real_jax.losses._correction import DEFAULT_KL_THRESHOLD
from real_jax.losses._correction import Corrected
from real_jax.losses._correction import mismatch_stats
from real_jax.losses._correction import rollout_correction
from real_jax.losses._covariance import clip_cov
from real_jax.losses._covariance import clip_cov_selection
from real_jax.losses._covariance import kl_cov
from real_jax.losses._covariance import kl_cov_selection
from real_jax.losses._covariance import token_covariance
from real_jax.losses._label import LabelLossAux
from real_jax.losses._label import bce
from real_jax.losses._label import bce_group
from real_jax.losses._label import grad
from real_jax.losses._label import grad_group
from real_jax.losses._label import label_objective
from real_jax.losses._label import real
from real_jax.losses._label import real_group
from real_jax.losses._label import real_product
from real_jax.losses._label import real_product_group
from real_jax.losses._policy_gradient import DIVERGENCES
from real_jax.losses._policy_gradient import binary_kl
from real_jax.losses._policy_gradient import cispo
from real_jax.losses._policy_gradient import cispo_group
from real_jax.losses._policy_gradient import dppo_kept
from real_jax.losses._policy_gradient import dppo_kl
from real_jax.losses._policy_gradient import dppo_tv
from real_jax.losses._policy_gradient import dro
from real_jax.losses._policy_gradient import gmpo
from real_jax.losses._policy_gradient import gmpo_group
from real_jax.losses._policy_gradient import gpg
from real_jax.losses._policy_gradient import gpg_group
from real_jax.losses._policy_gradient import sapo
from real_jax.losses._policy_gradient import sapo_group
from real_jax.losses._policy_gradient import topr
from real_jax.losses._policy_gradient import topr_group
from real_jax.losses._policy_gradient import vespo
from real_jax.losses._policy_gradient import vespo_log_weight
from real_jax.losses._registry import ADVANTAGE_LOSSES
from real_jax.losses._registry import CLIPPED_LOSSES
from real_jax.losses._registry import LABEL_LOSSES
from real_jax.losses._registry import LOSSES
from real_jax.losses._registry import LossSpec
from real_jax.losses._registry import check_hyperparameters
from real_jax.losses._registry import defaults
from real_jax.losses._registry import get
from real_jax.losses._registry import hyperparameters
from real_jax.losses._registry import register
from real_jax.losses._registry import registered
from real_jax.losses._registry import spec

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ADVANTAGE_LOSSES",
    "AGG_MODES",
    "CLIPPED_LOSSES",
    "CORRECTIONS",
    "AdvantageLossAux",
    "Corrected",
    "DEFAULT_CAP",
    "DEFAULT_KL_THRESHOLD",
    "DIVERGENCES",
    "KL_TYPES",
    "LABEL_LOSSES",
    "LOSSES",
    "LabelLossAux",
    "LossSpec",
    "advantage_objective",
    "label_objective",
    "aggregate",
    "batch_advantages",
    "bce",
    "bce_group",
    "binary_kl",
    "cispo",
    "cispo_group",
    "clip_cov",
    "clip_cov_selection",
    "clipped_surrogate_group",
    "dapo",
    "check_hyperparameters",
    "defaults",
    "dppo_kept",
    "dppo_kl",
    "dppo_tv",
    "dr_grpo",
    "dro",
    "get",
    "register",
    "registered",
    "gmpo",
    "gmpo_group",
    "gpg",
    "gpg_group",
    "grad",
    "grad_group",
    "group_advantages",
    "grpo",
    "gspo",
    "hyperparameters",
    "kl_cov",
    "kl_cov_selection",
    "kl_penalty",
    "luspo",
    "mismatch_stats",
    "positive_nll_loss",
    "real",
    "real_group",
    "real_product",
    "real_product_group",
    "rollout_correction",
    "sapo",
    "sapo_group",
    "topr",
    "topr_group",
    "sequence_scores",
    "spec",
    "token_covariance",
    "vespo",
    "vespo_log_weight",
]
