"""Reports over finished runs, a layer above the trainer.

- `sweep`: a sweep's `summary.csv`, its Markdown table and its plots.
- `study`: a study's learning rates chosen on validation data, t intervals
  over seeds, paired comparisons, its tables and figures.
- `stats`: t intervals, the exact sign-flip test and Holm's correction.

Nothing in `real_jax.training` (or below) imports this package, so training
never loads matplotlib.
"""
