"""Strict JAX for every test: no silent rank promotion; float64 available on request.

x64 is enabled so that float64 checks are possible; float32 tests build their
arrays as float32 explicitly and assert the dtype is preserved.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)
