"""Strict JAX for every test, and the fixtures the training tests share.

x64 is enabled so that float64 checks are possible; float32 tests build their
arrays as float32 explicitly and assert the dtype is preserved. Rank
promotion raises, so a `[G]` array cannot silently broadcast against `[G, T]`.
"""

from __future__ import annotations

import jax
import ml_collections
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)


def make_tiny_config(base_dir: str, **overrides) -> ml_collections.ConfigDict:
  """The trainer's config shrunk to seconds: 1-digit addition, a 1-layer 16-wide policy.

  A plain function (not only a fixture) so that subprocess scripts can build
  the same config.
  """
  from real_jax.training import config  # noqa: PLC0415
  cfg = config.get_config()
  cfg.task.kwargs.digits = 1
  cfg.model.width, cfg.model.depth, cfg.model.heads = 16, 1, 2
  cfg.base.update(dir=str(base_dir), max_steps=30, eval_every=15, eval_size=32, batch_size=32,
                  band=(0.0, 1.0))
  cfg.update(prompts_per_step=4, group_size=4, minibatches=2, steps=4, eval_every=2,
             eval_size=16, checkpoint_every=2, log_every=100)
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
