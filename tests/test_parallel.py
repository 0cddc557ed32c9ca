"""Training as one function: vmapped seeds, sharding on 8 CPU devices, the sweep runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import sweep
from real_jax import tasks
from real_jax import train as train_lib
from real_jax import train_scan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(base_dir, **overrides):
  from experiments.configs import addition  # noqa: PLC0415
  cfg = addition.get_config()
  cfg.task.kwargs.digits = 1
  cfg.model.width, cfg.model.depth, cfg.model.heads = 16, 1, 2
  cfg.base.update(dir=str(base_dir), max_steps=30, eval_every=15, eval_size=32, batch_size=32,
                  band=(0.0, 1.0))
  cfg.update(prompts_per_step=8, group_size=4, minibatches=2, steps=2, eval_size=16)
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("base_models")


class TestArrayTask:
  """The JAX forms of a task agree with its Python forms."""

  @pytest.mark.parametrize("task", [tasks.Addition(2), tasks.Multiplication(2, 2)])
  def test_problems_split_and_verdicts(self, task):
    prompts, targets, length = jax.jit(lambda k: task.jax_problems(k, 128, "train"))(
        jax.random.key(0))
    texts = [task.tokenizer.decode(p[1:]) for p in np.asarray(prompts)]
    assert not any(task.is_held_out(t) for t in texts)
    held, _, _ = task.jax_problems(jax.random.key(1), 32, "eval")
    assert all(task.is_held_out(task.tokenizer.decode(p[1:])) for p in np.asarray(held))
    rng = np.random.default_rng(0)
    for text, target, n in zip(texts, np.asarray(targets), np.asarray(length)):
      a, b = text[:-1].split(task.op)
      answer = str(int(a) + int(b) if task.op == "+" else int(a) * int(b))
      assert n == len(answer) + 1 and task.reward(target, answer) == 1.0
      # Random corruptions: the array verifier agrees with the string verifier.
      for _ in range(4):
        response = target.copy()
        response[rng.integers(0, len(response))] = rng.integers(0, task.tokenizer.vocab_size)
        want = task.reward(response, answer)
        got = float(task.jax_rewards(jnp.asarray(response)[None], jnp.asarray(target)[None],
                                     jnp.asarray([n]))[0])
        assert got == want, (text, response, answer)


class TestVmappedSeeds:

  @pytest.mark.slow
  def test_vmapped_seeds_equal_separate_runs_and_tau_axis(self, base_dir):
    cfg = tiny_config(base_dir, loss="real")
    graphdef, params, _ = train_lib.build_base_model(cfg, log=lambda _: None)
    train = train_scan.make_train(cfg, graphdef)
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    taus = jnp.asarray([0.5, 2.0])
    _, together = jax.jit(jax.vmap(train, in_axes=(None, 0, 0)))(params, keys, taus)
    single = jax.jit(train)
    for i in range(2):
      _, alone = single(params, keys[i], taus[i])
      for name in train_scan.SCAN_METRICS + ("eval_pass_at_1",):
        np.testing.assert_allclose(together[name][i], alone[name], rtol=2e-5, atol=1e-6,
                                   err_msg=name)
    assert np.asarray(together["loss"]).shape == (2, cfg.steps)

  def test_minibatches_hold_whole_groups(self, base_dir):
    cfg = tiny_config(base_dir)
    graphdef, _, _ = train_lib.build_base_model(cfg, log=lambda _: None)
    with pytest.raises(ValueError, match="must be divisible by `minibatches`"):
      train_scan.make_train(tiny_config(base_dir, prompts_per_step=6, minibatches=4), graphdef)


SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    jax.config.update("jax_numpy_rank_promotion", "raise")
    from test_parallel import tiny_config
    from real_jax import train as train_lib, train_scan
    assert len(jax.devices()) == 8, jax.devices()
    cfg = tiny_config({base!r}, loss={loss!r})
    graphdef, params, _ = train_lib.build_base_model(cfg, log=lambda _: None)
    key = jax.random.key(3)
    _, ref = jax.jit(train_scan.make_train(cfg, graphdef))(params, key, cfg.tau)
    out = {{}}
    for data, fsdp in ((8, 1), (4, 2)):
      mesh = train_scan.make_mesh(data=data, fsdp=fsdp)
      sharded_params = train_scan.shard_params(params, mesh)
      _, got = jax.jit(train_scan.make_train(cfg, graphdef, mesh))(sharded_params, key, cfg.tau)
      out[f"{{data}}x{{fsdp}}"] = {{k: [np.asarray(ref[k]).tolist(), np.asarray(got[k]).tolist()]
                                  for k in ref}}
    try:  # 4 groups cannot be spread over 8 devices without splitting one
      train_scan.make_train(tiny_config({base!r}, prompts_per_step=4), graphdef,
                            train_scan.make_mesh(data=8))
      raise SystemExit("expected a ValueError for 4 groups on 8 devices")
    except ValueError as e:
      assert "groups are never split across devices" in str(e), e
    print("RESULT" + json.dumps(out))
""")


class TestSharding:

  @pytest.mark.slow
  @pytest.mark.parametrize("loss", ["real", "dapo"])
  def test_eight_devices_equal_one(self, base_dir, loss):
    # Build the base model here so the subprocess only loads it.
    train_lib.build_base_model(tiny_config(base_dir), log=lambda _: None)
    script = SHARDED_SCRIPT.format(root=ROOT, tests=os.path.join(ROOT, "tests"),
                                   base=str(base_dir), loss=loss)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    for layout, metrics in result.items():
      for name, (ref, got) in metrics.items():
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, err_msg=f"{layout} {name}")
      # Rewards are counts over the whole batch: identical, not just close.
      assert metrics["reward_mean"][0] == metrics["reward_mean"][1], layout

  def test_mesh_axes(self):
    mesh = train_scan.make_mesh(data=1, fsdp=1)
    assert mesh.axis_names == ("data", "fsdp")
    with pytest.raises(ValueError, match="`fsdp`"):
      train_scan.make_mesh(fsdp=len(jax.devices()) + 1)


class TestBfloat16:

  @pytest.mark.slow
  def test_bfloat16_compute_keeps_float32_parameters(self, base_dir):
    cfg = tiny_config(base_dir, loss="real")
    cfg.model.compute_dtype = "bfloat16"
    graphdef, params, _ = train_lib.build_base_model(cfg, log=lambda _: None)
    final, metrics = jax.jit(train_scan.make_train(cfg, graphdef))(params, jax.random.key(0), 0.5)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(final))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())


# ----------------------------------------------------------- sweep runner ----


class TestSweepRunner:
  """The runner's bookkeeping, with a stand-in for training."""

  points = sweep.product(loss=["real", "boom"], tau=[0.25, 1.0], seed=[0, 1])

  @staticmethod
  def fake_group(calls):
    def run(cfg, shared, todo):
      calls.append((shared["loss"], [(p["tau"], p["seed"]) for p in todo]))
      if shared["loss"] == "boom":
        raise RuntimeError("this point's training raised")
      steps = 3
      return [{**{k: np.full(steps, p["tau"] + p["seed"]) for k in train_scan.SCAN_METRICS},
               "eval_pass_at_1": np.float32(p["tau"])} for p in todo]
    return run

  def test_skips_finished_resumes_interrupted_survives_failure(self, tmp_path, base_dir):
    cfg = tiny_config(base_dir)
    calls = []
    status = sweep.run_sweep(cfg, self.points, str(tmp_path), log=lambda _: None,
                             run_group=self.fake_group(calls))
    assert len(status["done"]) == 4 and len(status["failed"]) == 4
    assert [c[0] for c in calls] == ["real", "boom"]
    assert len(calls[0][1]) == 4  # seeds x taus of one loss: one vmapped program
    failed = tmp_path / sweep.point_name({"loss": "boom", "tau": 0.25, "seed": 0}) / "FAILED"
    assert "this point's training raised" in failed.read_text()

    # Interrupted: a point lost its DONE marker; only it (and the failures) run again.
    os.remove(tmp_path / sweep.point_name({"loss": "real", "tau": 1.0, "seed": 1}) / "DONE")
    calls.clear()
    status = sweep.run_sweep(cfg, self.points, str(tmp_path), log=lambda _: None,
                             run_group=self.fake_group(calls))
    assert calls[0] == ("real", [(1.0, 1)])
    assert len(status["skipped"]) == 3 and len(status["done"]) == 1

    summary, plot = sweep.summarise(self.points, str(tmp_path))
    rows = list(__import__("csv").DictReader(open(summary)))
    assert len(rows) == 4 and {r["loss"] for r in rows} == {"real"}
    assert plot and os.path.getsize(plot) > 10_000
    done = json.loads((tmp_path / sweep.point_name({"loss": "real", "tau": 1.0, "seed": 1})
                       / "DONE").read_text())
    assert done["eval_pass_at_1"] == 1.0

  def test_unknown_override_is_an_error(self, base_dir):
    with pytest.raises(ValueError, match="no such field"):
      sweep.apply_overrides(tiny_config(base_dir), {"learning_rate": 1.0})

  @pytest.mark.slow
  def test_real_sweep_end_to_end(self, tmp_path, base_dir):
    cfg = tiny_config(base_dir)
    points = sweep.product(loss=["real", "grpo"], tau=[0.25, 1.0], seed=[0])
    status = sweep.run_sweep(cfg, points, str(tmp_path), log=lambda _: None)
    assert len(status["done"]) == 4 and not status["failed"]
    by_point = {(p["loss"], p["tau"]): json.loads(
        (tmp_path / sweep.point_name(p) / "DONE").read_text()) for p in points}
    # GRPO ignores tau: its two tau points are the same run.
    assert by_point[("grpo", 0.25)] == by_point[("grpo", 1.0)]
    assert by_point[("real", 0.25)] != by_point[("real", 1.0)]
