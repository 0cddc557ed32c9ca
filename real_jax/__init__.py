"""real_jax: Rewards as Labels (REAL) and its RLVR siblings in JAX."""

from real_jax import losses

__version__ = "0.1.0"

__all__ = [
    "losses",
]
