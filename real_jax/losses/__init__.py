"""Pure-functional RLVR losses: REAL, GRAD, BCE, product-style, GRPO, DAPO, Dr.GRPO, GSPO.

Every batched loss takes `logp, old_logp, mask: [B, G, T]` and `rewards: [B, G]`
and returns `(loss, aux)`. Each is built from a function of one rollout group
(`*_group`) that is `jax.vmap`-ed over groups. See `../shared/paper.md` for the
formulas and conventions. `LOSSES` names every objective; `defaults(name)`
gives its default hyperparameters, read from its signature.
"""

from real_jax.losses._clipped import AGG_MODES
from real_jax.losses._clipped import ClippedLossAux
from real_jax.losses._clipped import KL_TYPES
from real_jax.losses._clipped import aggregate
from real_jax.losses._clipped import clipped_surrogate_group
from real_jax.losses._clipped import dapo
from real_jax.losses._clipped import dr_grpo
from real_jax.losses._clipped import grpo
from real_jax.losses._clipped import gspo
from real_jax.losses._clipped import kl_penalty
from real_jax.losses._common import group_advantages
from real_jax.losses._common import sequence_scores
from real_jax.losses._label import LabelLossAux
from real_jax.losses._label import bce
from real_jax.losses._label import bce_group
from real_jax.losses._label import grad
from real_jax.losses._label import grad_group
from real_jax.losses._label import real
from real_jax.losses._label import real_group
from real_jax.losses._label import real_product
from real_jax.losses._label import real_product_group
from real_jax.losses._registry import CLIPPED_LOSSES
from real_jax.losses._registry import LABEL_LOSSES
from real_jax.losses._registry import LOSSES
from real_jax.losses._registry import LossSpec
from real_jax.losses._registry import defaults
from real_jax.losses._registry import get
from real_jax.losses._registry import spec

__all__ = [
    "AGG_MODES",
    "CLIPPED_LOSSES",
    "ClippedLossAux",
    "KL_TYPES",
    "LABEL_LOSSES",
    "LOSSES",
    "LabelLossAux",
    "LossSpec",
    "aggregate",
    "bce",
    "bce_group",
    "clipped_surrogate_group",
    "dapo",
    "defaults",
    "dr_grpo",
    "get",
    "grad",
    "grad_group",
    "group_advantages",
    "grpo",
    "gspo",
    "kl_penalty",
    "real",
    "real_group",
    "real_product",
    "real_product_group",
    "sequence_scores",
    "spec",
]
