"""Reports over finished runs, a layer above the trainer.

- `sweep`: a sweep's `summary.csv`, its Markdown table and its plots.
- `study`: a study's learning rates chosen on validation data, bootstrap
  intervals over seeds, paired differences, its tables and figures.

Nothing in `real_jax.training` (or below) imports this package, so training
never loads matplotlib.
"""
