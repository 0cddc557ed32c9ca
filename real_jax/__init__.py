"""real_jax: Rewards as Labels (REAL) and its RLVR siblings in JAX.

`real_jax.losses` loads on first use (`real_jax.losses.real`), so that a
dependency-free module such as `real_jax.metric_names` imports without JAX.
"""

import importlib

__version__ = "0.1.0"

__all__ = [
    "losses",
]


def __getattr__(name: str):
  if name in __all__:
    return importlib.import_module(f"real_jax.{name}")
  raise AttributeError(f"module 'real_jax' has no attribute {name!r}")
