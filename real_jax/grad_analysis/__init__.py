"""Numerical reproduction of the gradient derivations, for every objective.

Closed forms, written from docs/derivations.md without autodiff, against
`jax.grad` of the batched losses of `real_jax.losses`, over a randomized sweep
(`run_sweep`) and the grid of the paper's Figure 1; the atlas draws every
objective in that layout. `check_objective` runs a researcher's own objective
(a loss and its closed form) through the same sweep, report and figure.

Command line: `python -m real_jax.grad_analysis --out DIR`.
"""

from real_jax.grad_analysis._autodiff import rollout_weights
from real_jax.grad_analysis._autodiff import token_gradients
from real_jax.grad_analysis._closed_forms import ADVANTAGE_DEFAULTS
from real_jax.grad_analysis._closed_forms import CLOSED_FORMS
from real_jax.grad_analysis._closed_forms import CONFIGURATIONS
from real_jax.grad_analysis._closed_forms import LABEL_FORMS
from real_jax.grad_analysis._closed_forms import AdvantageWeights
from real_jax.grad_analysis._closed_forms import BatchLabelWeights
from real_jax.grad_analysis._closed_forms import ClosedForm
from real_jax.grad_analysis._closed_forms import LabelForm
from real_jax.grad_analysis._closed_forms import LabelWeights
from real_jax.grad_analysis._closed_forms import advantage_weights
from real_jax.grad_analysis._closed_forms import aggregation_factor
from real_jax.grad_analysis._closed_forms import anchored_weight
from real_jax.grad_analysis._closed_forms import bce_group_weights
from real_jax.grad_analysis._closed_forms import closed_form
from real_jax.grad_analysis._closed_forms import configuration
from real_jax.grad_analysis._closed_forms import grad_group_weights
from real_jax.grad_analysis._closed_forms import label_weights
from real_jax.grad_analysis._closed_forms import real_group_weights
from real_jax.grad_analysis._closed_forms import real_product_group_weights
from real_jax.grad_analysis._closed_forms import unit_bound
from real_jax.grad_analysis._custom import Objective
from real_jax.grad_analysis._custom import ObjectiveReport
from real_jax.grad_analysis._custom import as_objective
from real_jax.grad_analysis._custom import check_objective
from real_jax.grad_analysis._custom import format_report
from real_jax.grad_analysis._custom import plot_objective
from real_jax.grad_analysis._figures import ATLAS
from real_jax.grad_analysis._figures import FIGURE1
from real_jax.grad_analysis._figures import VARIANTS
from real_jax.grad_analysis._figures import figure1_curves
from real_jax.grad_analysis._figures import plot_atlas
from real_jax.grad_analysis._figures import plot_figure1
from real_jax.grad_analysis._figures import plot_variants
from real_jax.grad_analysis._properties import TOLERANCE
from real_jax.grad_analysis._report import format_properties
from real_jax.grad_analysis._report import format_table
from real_jax.grad_analysis._report import report_markdown
from real_jax.grad_analysis._sweep import OBJECTIVES
from real_jax.grad_analysis._sweep import SweepResult
from real_jax.grad_analysis._sweep import run_sweep

__all__ = [
    "ADVANTAGE_DEFAULTS",
    "ATLAS",
    "AdvantageWeights",
    "BatchLabelWeights",
    "CLOSED_FORMS",
    "CONFIGURATIONS",
    "ClosedForm",
    "FIGURE1",
    "LABEL_FORMS",
    "LabelForm",
    "LabelWeights",
    "OBJECTIVES",
    "Objective",
    "ObjectiveReport",
    "SweepResult",
    "TOLERANCE",
    "VARIANTS",
    "advantage_weights",
    "aggregation_factor",
    "anchored_weight",
    "as_objective",
    "bce_group_weights",
    "check_objective",
    "closed_form",
    "configuration",
    "figure1_curves",
    "format_table",
    "format_properties",
    "report_markdown",
    "format_report",
    "grad_group_weights",
    "label_weights",
    "plot_atlas",
    "plot_figure1",
    "plot_objective",
    "plot_variants",
    "real_group_weights",
    "real_product_group_weights",
    "rollout_weights",
    "run_sweep",
    "token_gradients",
    "unit_bound",
]
