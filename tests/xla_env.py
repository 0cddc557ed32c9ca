"""The XLA settings of the test run and of the docs build, set before JAX starts.

Both compile many small programs once or twice and run them briefly, so the
settings trade run speed for compile speed. They go into `os.environ`, so
every subprocess and notebook kernel started afterwards inherits them.
`tests/conftest.py` and `docs/conf.py` call `configure` (variables already
set are kept).
"""

from __future__ import annotations

import importlib.metadata
import os

# XLA's CPU compiler with LLVM's cheap pipeline. The tests' programs are small,
# so compiling them is most of their time: on the 2-core CPU, test_parallel's
# vmapped and 8-device tests took 124 s instead of 172 s, and the study
# command's smoke run 66 s instead of 91 s. Without fast-math LLVM does not
# reorder float arithmetic, and the programs that a test compares are compiled
# with the same flags.
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")

# jaxlib 0.10 still has the older elemental emitters. They compile fusions in
# about half the CPU time of the MLIR ones: a cold tiny train_scan run took
# 16.6 s of CPU against 27.7 s. Later versions removed the flag and reject it.
OLD_EMITTERS = "--xla_cpu_use_fusion_emitters=false"


def _jaxlib_before(major: int, minor: int) -> bool:
  version = importlib.metadata.version("jaxlib").split(".")[:2]
  return tuple(int(v) for v in version) < (major, minor)


def configure(root: str) -> None:
  """Sets the compilation cache under `root/.jax_cache` and the compiler flags."""
  # One persistent compilation cache per JAX version for the run and all it
  # starts. Every program goes in, however quickly it compiled: a subprocess
  # then finds the small eager operations that an earlier process compiled
  # (initialisers, key splits) as well as the trainer's and the derivation
  # check's programs. A tiny train_scan run took 10.6 s with every program
  # cached, against 16.2 s with JAX's default threshold of 0.5 s.
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
      root, ".jax_cache", f"jax-{importlib.metadata.version('jax')}"))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  wanted = list(FAST_COMPILE) + ([OLD_EMITTERS] if _jaxlib_before(0, 11) else [])
  flags = os.environ.get("XLA_FLAGS", "").split()
  os.environ["XLA_FLAGS"] = " ".join(flags + [f for f in wanted if f not in flags])
