"""The scanned driver: vmapped seeds, tau and learning rates; sharding on 8 CPU devices; bfloat16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import chex
from flax import nnx
import jax
import jax.numpy as jnp
from numerics import assert_allclose_scaled
import numpy as np
import pytest

from real_jax import metric_names
from real_jax import model as model_lib
from real_jax.training import base_model
from real_jax.training import data
from real_jax.training import metrics
from real_jax.training import scan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = dict(log=lambda _: None)


class TestVmappedPoints:

  @pytest.mark.slow
  def test_vmapped_seeds_taus_and_lrs_equal_separate_runs(self, tiny_config):
    cfg = tiny_config(loss="real", prompts_per_step=8, steps=3)
    graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
    train = scan.make_train(cfg, graphdef)
    keys = jax.vmap(jax.random.key)(jnp.asarray([0, 0, 1]))
    taus = jnp.asarray([0.5, 2.0, 0.5], jnp.float32)
    lrs = jnp.asarray([3e-4, 3e-4, 3e-3], jnp.float32)
    _, together = jax.jit(jax.vmap(train, in_axes=(None, 0, 0, 0)))(params, keys, taus, lrs)
    chex.assert_shape(together["loss"], (3, cfg.steps))
    chex.assert_shape(together[metric_names.EVAL_METRIC], (3, len(metrics.eval_steps(3, 2))))
    single = jax.jit(train)
    alone = [single(params, keys[i], taus[i], lrs[i])[1] for i in range(3)]
    for i in range(3):
      chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], together), alone[i],
                                  rtol=2e-5, atol=1e-6)
    # Each vmapped axis reaches the run: changing tau or lr changes the updates.
    assert not np.allclose(alone[0]["grad_norm"], alone[1]["grad_norm"])
    assert not np.allclose(alone[0]["kl_old"][1:], alone[2]["kl_old"][1:])

  def test_point_count_must_match(self, tiny_config):
    with pytest.raises(ValueError, match="one entry per point"):
      scan.run_points(tiny_config(), [0, 1], taus=[0.5], **QUIET)


SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    import chex
    chex.set_n_cpu_devices(8)  # before JAX starts its CPU backend
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    from conftest import make_tiny_config
    from real_jax.training import base_model, scan
    assert len(jax.devices()) == 8, jax.devices()
    out = {{}}
    for loss in {losses!r}:
      cfg = make_tiny_config({base!r}, loss=loss, prompts_per_step=8, steps=2)
      graphdef, params, _ = base_model.build_base_model(cfg, log=lambda _: None)
      key = jax.random.key(3)
      _, ref = jax.jit(scan.make_train(cfg, graphdef))(params, key, cfg.tau, cfg.lr)
      for data, fsdp in ((8, 1), (4, 2)):
        mesh = scan.make_mesh(data=data, fsdp=fsdp)
        sharded = scan.shard_params(params, mesh)
        _, got = jax.jit(scan.make_train(cfg, graphdef, mesh))(sharded, key, cfg.tau, cfg.lr)
        out[f"{{loss}} {{data}}x{{fsdp}}"] = {{
            k: [np.asarray(ref[k]).tolist(), np.asarray(got[k]).tolist()] for k in ref}}
    try:  # 4 groups cannot be spread over 8 devices without splitting one
      scan.make_train(make_tiny_config({base!r}, prompts_per_step=4), graphdef,
                      scan.make_mesh(data=8))
      raise SystemExit("expected a ValueError for 4 groups on 8 devices")
    except ValueError as e:
      assert "groups are never split across devices" in str(e), e
    print("RESULT" + json.dumps(out))
""")


class TestSharding:

  @pytest.mark.slow
  def test_eight_devices_equal_one(self, tiny_config, base_dir):
    # Both losses in one process: JAX starts its 8 devices once.
    base_model.build_base_model(tiny_config(), **QUIET)  # the subprocess only loads it
    script = SHARDED_SCRIPT.format(base=base_dir, losses=("real", "dapo"))
    # conftest's config builder comes from tests/; the package is installed.
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.path.join(ROOT, "tests"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert sorted(result) == ["dapo 4x2", "dapo 8x1", "real 4x2", "real 8x1"]
    for layout, values in result.items():
      for name, (ref, got) in values.items():
        # Means of rewards, weights and log-probability differences whose
        # terms are of order 1: the floor is their scale.
        assert_allclose_scaled(got, ref, floor=1.0, err_msg=f"{layout} {name}")
      # Rewards are counts over the whole batch: identical, not just close.
      assert values["reward_mean"][0] == values["reward_mean"][1], layout

  def test_mesh_axes(self):
    mesh = scan.make_mesh(data=1, fsdp=1)
    assert mesh.axis_names == ("data", "fsdp")
    with pytest.raises(ValueError, match="`fsdp`"):
      scan.make_mesh(fsdp=len(jax.devices()) + 1)


class TestBfloat16:

  @pytest.mark.slow
  def test_bfloat16_compute_keeps_float32_parameters(self, tiny_config):
    cfg = tiny_config(loss="real", steps=2)
    cfg.model.compute_dtype = "bfloat16"
    graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
    final, run = jax.jit(scan.make_train(cfg, graphdef))(params, jax.random.key(0), 0.5, 3e-4)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(final))
    for k in ("loss", "reward_mean", "entropy", "grad_norm", "kl_old", metric_names.EVAL_METRIC):
      assert np.all(np.isfinite(np.asarray(run[k]))), k
    # The bfloat16 forward pass is the float32 one to bfloat16 precision (8
    # mantissa bits, about 4e-3 per rounding, a few roundings deep), on the
    # same parameters: a policy that ignored its input would fail here.
    tokens = jnp.asarray(np.random.default_rng(0).integers(3, 12, (4, 8)), jnp.int32)
    wide_cfg = cfg.copy_and_resolve_references()
    wide_cfg.model.compute_dtype = "float32"
    wide_graphdef, _ = nnx.split(base_model.make_policy(wide_cfg, data.make_task(cfg), 0))
    narrow = np.asarray(model_lib.apply(graphdef, params, tokens), np.float64)
    wide = np.asarray(model_lib.apply(wide_graphdef, params, tokens), np.float64)
    np.testing.assert_allclose(narrow, wide, rtol=0, atol=0.05 * np.max(np.abs(wide)))
    assert np.std(wide) > 0.1  # logits that vary, so the comparison means something
