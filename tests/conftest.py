"""Strict JAX for every test, and the fixtures the training tests share.

x64 is enabled so that float64 checks are possible; float32 tests build their
arrays as float32 explicitly and assert the dtype is preserved. Rank
promotion raises, so a `[G]` array cannot silently broadcast against `[G, T]`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One persistent compilation cache (per JAX version) for the whole run and
# every subprocess and notebook kernel it starts, set before JAX starts. Every
# program goes in, however quickly it compiled: a subprocess then finds the
# small eager operations (parameter initialisers, key splits) that an earlier
# process compiled, as well as the trainer's and the derivation check's
# programs. Measured on the 2-core CPU: a tiny train_scan run in 10.6 s with
# every program cached against 16.2 s with the default 0.5 s threshold.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    ROOT, ".jax_cache", f"jax-{importlib.metadata.version('jax')}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# XLA's CPU compiler with LLVM's cheap pipeline, for the run and everything it
# starts: the tests' programs are small, so compiling them is most of their
# time. Measured on the 2-core CPU: test_parallel's vmapped and 8-device tests
# 124 s instead of 172 s, the study command's smoke run 66 s instead of 91 s.
# Without fast-math LLVM does not reorder float arithmetic, and the programs a
# test compares are compiled with the same flags.
FAST_COMPILE = ["--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
# jaxlib 0.10 still has the older elemental emitters, which compile fusions in
# about half the CPU time of the MLIR ones (a cold tiny train_scan run: 16.6 s
# of CPU against 27.7 s); later versions removed the flag and reject it.
if tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2]) < (0, 11):
  FAST_COMPILE.append("--xla_cpu_use_fusion_emitters=false")
_flags = os.environ.get("XLA_FLAGS", "").split()
os.environ["XLA_FLAGS"] = " ".join(_flags + [f for f in FAST_COMPILE if f not in _flags])

import jax  # noqa: E402
import ml_collections  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)


TINY_CONFIG = os.path.join(ROOT, "experiments", "configs", "tiny.py")


def make_tiny_config(base_dir: str, **overrides) -> ml_collections.ConfigDict:
  """`experiments/configs/tiny.py`'s config (seconds per run), its base models in `base_dir`.

  A plain function (not only a fixture) so that subprocess scripts can build
  the same config.
  """
  spec = importlib.util.spec_from_file_location("tiny_config", TINY_CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config()
  cfg.base.dir = str(base_dir)
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> str:
  """One folder of base models for the whole session: each is built once."""
  return str(tmp_path_factory.mktemp("base_models"))


@pytest.fixture(scope="session")
def tiny_config(base_dir):
  """`tiny_config(**overrides)`: the tiny trainer config, its base models shared."""
  return lambda **overrides: make_tiny_config(base_dir, **overrides)
