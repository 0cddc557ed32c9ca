"""Strict JAX for every test, and the fixtures the training tests share.

The suite runs in the mode users run: JAX's default, float32, x64 off, so
that Python-float hyperparameters and weakly typed constants take the dtypes
they take in a user's run. A test that needs float64 says so with
`@pytest.mark.x64`, which enables x64 for that test alone and restores the
flag after it. Rank promotion raises, so a `[G]` array cannot silently
broadcast against `[G, T]`.
"""

from __future__ import annotations

import importlib.util
import os

import xla_env  # tests/ is on the path (setup.cfg)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The compilation cache and the cheap compiler flags (tests/xla_env.py), for
# this run and every subprocess it starts.
xla_env.configure(ROOT)

import hypothesis  # noqa: E402
import jax  # noqa: E402
import ml_collections  # noqa: E402
import pytest  # noqa: E402

# Property tests draw the same examples on every run and machine, and read no
# saved examples: a failure is reproducible, and a pass means the same thing
# everywhere.
hypothesis.settings.register_profile("real_jax", derandomize=True, database=None)
hypothesis.settings.load_profile("real_jax")

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _x64_where_marked(request):
  """x64 on for a test marked `x64`, restored after it; JAX's default elsewhere."""
  before = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", request.node.get_closest_marker("x64") is not None)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", before)


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
  """`--dist loadgroup` on pytest >= 9.2: the group suffix xdist 3.8 cannot add.

  xdist marks a test's group by appending `@group` to `item._nodeid`, which
  pytest 9.2 no longer reads (ids became `item._id`, a `NodeId`), so every
  group was scattered over the workers and their shared fixtures and compiled
  programs were built on each. The same suffix, put where pytest reads it.

  And the `slow` tests first (a stable sort), so that none of them starts
  when the other worker is nearly done: xdist hands out the groups of several
  tests first, the largest first, then the single tests in this order.
  """
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
  if not getattr(config.option, "loadgroup", False):
    return
  for item in items:
    mark = item.get_closest_marker("xdist_group")
    nodeid = item.nodeid
    if mark is None or nodeid.rfind("@") > nodeid.rfind("]"):
      continue  # not grouped, or xdist's own suffix took effect
    from _pytest.nodeid import NodeId  # noqa: PLC0415  (exists exactly where it is needed)
    item._id = NodeId.parse(f"{nodeid}@{mark.args[0] if mark.args else mark.kwargs['name']}")
