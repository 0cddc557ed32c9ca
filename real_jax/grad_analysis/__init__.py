"""Numerical reproduction of the paper's gradient derivations.

Closed forms (`closed_forms`), written from paper.md without autodiff, against
`jax.grad` of the batched losses of `real_jax.losses` (`autodiff`), over a
randomized sweep (`run_sweep`) and the grid of the paper's Figure 1.
Command line: `python -m real_jax.grad_analysis --out DIR`.
"""

from real_jax.grad_analysis._autodiff import rollout_weights
from real_jax.grad_analysis._autodiff import token_gradients
from real_jax.grad_analysis._closed_forms import CLIPPED_DEFAULTS
from real_jax.grad_analysis._closed_forms import BatchLabelWeights
from real_jax.grad_analysis._closed_forms import ClippedWeights
from real_jax.grad_analysis._closed_forms import LabelWeights
from real_jax.grad_analysis._closed_forms import aggregation_factor
from real_jax.grad_analysis._closed_forms import anchored_weight
from real_jax.grad_analysis._closed_forms import bce_group_weights
from real_jax.grad_analysis._closed_forms import clipped_weights
from real_jax.grad_analysis._closed_forms import grad_group_weights
from real_jax.grad_analysis._closed_forms import label_weights
from real_jax.grad_analysis._closed_forms import real_group_weights
from real_jax.grad_analysis._closed_forms import real_product_group_weights
from real_jax.grad_analysis._figures import FIGURE1
from real_jax.grad_analysis._figures import VARIANTS
from real_jax.grad_analysis._figures import figure1_curves
from real_jax.grad_analysis._figures import plot_figure1
from real_jax.grad_analysis._figures import plot_variants
from real_jax.grad_analysis._sweep import OBJECTIVES
from real_jax.grad_analysis._sweep import TOLERANCE
from real_jax.grad_analysis._sweep import SweepResult
from real_jax.grad_analysis._sweep import compare_chunk
from real_jax.grad_analysis._sweep import make_cases
from real_jax.grad_analysis._sweep import Curve
from real_jax.grad_analysis._sweep import curves_batch
from real_jax.grad_analysis._sweep import monotonic_verdict
from real_jax.grad_analysis._sweep import run_curves
from real_jax.grad_analysis._sweep import run_sweep

__all__ = [
    "FIGURE1",
    "VARIANTS",
    "BatchLabelWeights",
    "CLIPPED_DEFAULTS",
    "ClippedWeights",
    "Curve",
    "LabelWeights",
    "OBJECTIVES",
    "SweepResult",
    "TOLERANCE",
    "aggregation_factor",
    "anchored_weight",
    "bce_group_weights",
    "clipped_weights",
    "compare_chunk",
    "curves_batch",
    "figure1_curves",
    "grad_group_weights",
    "label_weights",
    "make_cases",
    "monotonic_verdict",
    "plot_figure1",
    "plot_variants",
    "run_curves",
    "real_group_weights",
    "real_product_group_weights",
    "rollout_weights",
    "run_sweep",
    "token_gradients",
]
