"""RL training on the toy tasks: one step in JAX, two drivers, one metrics schema.

- `step`: `make_step(cfg, graphdef)`, the one RL step (sample, verify,
  `ppo_epochs x minibatches` updates, metrics); `make_optimizer`,
  `init_state`, `make_evaluate`.
- `scan`: `make_train`, a whole run as one `lax.scan` (vmap over seed, tau and
  learning rate; shard over a `(data, fsdp)` mesh); `run_points`.
- `loop`: `train(cfg, workdir)`, the resumable host loop over jitted chunks
  with evaluation, `metrics.jsonl`, TensorBoard and orbax checkpoints.
- `sweep`: the sweep runner (one folder per point, resumable); its summary
  and plots, and the study, are `real_jax.reporting`, a layer above.
- `metrics`: the computation of the schema (`real_jax.metric_names`), the
  records and one run's summary numbers.
- `data`: the seeded training stream and the held-out set.
- `base_model`: the supervised warm start every RL run begins from.
- `config`: the trainer's settings and their defaults.
"""

from real_jax.training import base_model
from real_jax.training import config
from real_jax.training import data
from real_jax.training import loop
from real_jax.training import metrics
from real_jax.training import scan
from real_jax.training import step
from real_jax.training import sweep

__all__ = [
    "base_model",
    "config",
    "data",
    "loop",
    "metrics",
    "scan",
    "step",
    "sweep",
]
