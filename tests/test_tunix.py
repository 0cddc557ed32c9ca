"""real_jax's objectives as Tunix policy losses, end to end on CPU.

Tunix comes with the `tunix` extra, which `make test` installs; outside CI a
missing Tunix skips this module, in CI it fails it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("CI", "").lower() != "true":
  pytest.importorskip("tunix", reason="the `tunix` extra is not installed")

# pylint: disable=g-import-not-at-top,wrong-import-position
from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
from numerics import assert_allclose_scaled
import optax
import reference
from tunix.models.qwen3 import model as qwen3
from tunix.rl import algo_core as tunix_algo_core
from tunix.rl import common as tunix_common
from tunix.rl import function_registry
from tunix.rl import rl_cluster as rl_cluster_lib
from tunix.rl.grpo import grpo_learner
from tunix.rl.rollout import base_rollout

from experiments.configs import r1_distill_1p5b_tunix as recipe
from real_jax import losses
from real_jax import tasks
from real_jax.integrations import tunix_train
import real_jax.integrations.tunix as rj_tunix

G = 4
TASK = tasks.Addition(1)
TOKENIZER = rj_tunix.CharTokenizerAdapter(TASK.tokenizer)


@pytest.fixture(autouse=True)
def tunix_numerics():
  # Tunix's models rely on implicit rank promotion and are written for
  # float32 defaults; the rest of the suite runs strict and with x64. Set
  # globally, not with the thread-local context managers: Tunix runs parts
  # of a training step in worker threads.
  saved = {name: getattr(jax.config, name)
           for name in ("jax_numpy_rank_promotion", "jax_enable_x64")}
  jax.config.update("jax_numpy_rank_promotion", "allow")
  jax.config.update("jax_enable_x64", False)
  try:
    yield
  finally:
    for name, value in saved.items():
      jax.config.update(name, value)


def tiny_qwen3(seed: int = 0, num_kv_heads: int = 1) -> qwen3.Qwen3:
  """A randomly initialised one-layer Qwen3 over the arithmetic alphabet."""
  config = qwen3.ModelConfig(
      num_layers=1, vocab_size=TOKENIZER.vocab_size, embed_dim=32,
      hidden_dim=64, num_heads=2, head_dim=16, num_kv_heads=num_kv_heads,
      rope_theta=10_000, norm_eps=1e-6)
  return qwen3.Qwen3(config, rngs=nnx.Rngs(seed))


def one_device_mesh() -> Mesh:
  return Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("fsdp", "tp"))


def parity_reward(prompts, completions, **kwargs):
  """Deterministic and about half correct for a random model."""
  del prompts, kwargs
  return [1.0 if c[:1] in set("01234+*") and c else 0.0 for c in completions]


# --------------------------------------------------------- registration ----


def test_objectives_are_registered():
  rj_tunix.register()  # also done by the first use of a config
  for name in rj_tunix.OBJECTIVES:
    fn = function_registry.get_policy_loss_fn(name)
    assert fn.keywords == {"objective": name}
  assert (function_registry.get_advantage_estimator(rj_tunix.LABEL_ESTIMATOR)
          is rj_tunix.binary_labels)
  # Tunix's own losses are left in place.
  assert function_registry.get_policy_loss_fn("grpo") is tunix_algo_core.grpo_loss_fn
  rj_tunix.register()  # idempotent
  assert function_registry.get_policy_loss_fn("real").keywords == {"objective": "real"}


def test_plain_grpo_config_resolves_real_to_real_jax():
  # GRPOConfig stores any string; what matters is what Tunix's registry makes of
  # it. Tunix's own config touches no name of the adapter: register first.
  rj_tunix.register()
  config = grpo_learner.GRPOConfig(policy_loss_fn="real", num_generations=G)
  fn = function_registry.get_policy_loss_fn(config.policy_loss_fn)
  assert fn.func is rj_tunix.policy_loss and fn.keywords == {"objective": "real"}
  with pytest.raises(LookupError, match="reel"):
    function_registry.get_policy_loss_fn("reel")


def test_label_config_defaults_and_validation():
  config = rj_tunix.LabelGRPOConfig(num_generations=G)
  assert (config.policy_loss_fn, config.advantage_estimator, config.beta,
          config.tau) == ("real", "binary_labels", 0.0, 0.5)
  with pytest.raises(ValueError, match="policy_loss_fn"):
    rj_tunix.LabelGRPOConfig(policy_loss_fn="grpo", num_generations=G)
  for tau in (0.0, -1.0, float("nan")):
    with pytest.raises(ValueError, match="tau"):
      rj_tunix.LabelGRPOConfig(tau=tau, num_generations=G)
  with pytest.raises(ValueError, match="num_generations"):
    rj_tunix.LabelGRPOConfig(num_generations=1)


def test_binary_labels_checks_rewards():
  r = np.array([1, 0, 0, 1, 1, 1, 1, 1], np.float64)
  out = rj_tunix.binary_labels(r, num_generations=G)
  np.testing.assert_array_equal(out, r)
  assert out.dtype == np.float32
  with pytest.raises(ValueError, match=r"0 or 1.*0\.5"):
    rj_tunix.binary_labels(np.array([1, 0.5, 0, 1]), num_generations=G)
  with pytest.raises(ValueError, match="0 or 1.*2.0"):
    rj_tunix.binary_labels(np.array([1, 2, 0, 1]), num_generations=G)
  with pytest.raises(ValueError, match="whole groups"):
    rj_tunix.binary_labels(np.array([1, 0, 0]), num_generations=G)


def test_labels_from_grpo_advantages_match_rewards_in_mixed_groups():
  rewards = np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1], np.float32)
  adv = tunix_algo_core.compute_advantages(rewards, num_generations=G)
  labels = np.asarray(rj_tunix.labels_from_advantages(jnp.asarray(adv)))
  np.testing.assert_array_equal(labels[:4], rewards[:4])
  np.testing.assert_array_equal(labels[8:], rewards[8:])
  # The all-correct group has advantage 0: labelled all-wrong, still not mixed.
  np.testing.assert_array_equal(labels[4:8], 0)


def test_group_rows_refuses_split_groups():
  x = jnp.zeros((6, 3))
  assert rj_tunix.group_rows(jnp.zeros((8, 3)), G, "real").shape == (2, G, 3)
  with pytest.raises(ValueError, match=r"6 rollouts.*num_generations=4.*whole groups"):
    rj_tunix.group_rows(x, G, "real")


# ----------------------------------------------- the adapter's loss value ----


def make_example(rng: np.random.Generator, groups: int, rewards: np.ndarray
                 ) -> tuple[grpo_learner.TrainExample, np.ndarray]:
  """A TrainExample as the learner builds it: left-padded prompts, padded completions."""
  rows = groups * G
  # Left-padded prompts of two lengths, as Tunix's sampler returns them.
  texts = ["13+4=" if i % 3 == 0 else "3+4=" for i in range(rows)]
  prompts = np.array([[tasks.PAD] * (5 - len(t)) + [tasks.BOS] + TOKENIZER.encode(t)
                      for t in texts], np.int32)
  t = 5
  completions = rng.integers(3, TOKENIZER.vocab_size, (rows, t)).astype(np.int32)
  lengths = rng.integers(1, t + 1, rows)
  lengths[1] = 0  # an empty response
  completion_mask = np.arange(t)[None, :] < lengths[:, None]
  completions = np.where(completion_mask, completions, tasks.PAD).astype(np.int32)
  example = grpo_learner.TrainExample(
      prompt_ids=jnp.asarray(prompts),
      prompt_mask=jnp.asarray(prompts != tasks.PAD),
      completion_ids=jnp.asarray(completions),
      completion_mask=jnp.asarray(completion_mask),
      advantages=jnp.asarray(rj_tunix.binary_labels(rewards, G)),
      ref_per_token_logps=None,
      old_per_token_logps=None,
  )
  return example, completion_mask


def tunix_logps(model, example, temperature):
  graphdef, state = nnx.split(model)
  return tunix_common.compute_per_token_logps(
      graphdef, state, prompt_tokens=example.prompt_ids,
      completion_tokens=example.completion_ids, pad_id=tasks.PAD,
      eos_id=tasks.EOS, stop_gradient=False, temperature=temperature)


@pytest.mark.parametrize("objective", rj_tunix.OBJECTIVES)
def test_adapter_loss_equals_real_jax_on_the_same_logprobs(objective):
  rng = np.random.default_rng(0)
  model = tiny_qwen3()
  rewards = np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0], np.float32)
  example, mask = make_example(rng, 3, rewards)
  temperature = 0.7
  logp = np.asarray(tunix_logps(model, example, temperature), np.float64)
  old = logp + rng.normal(0, 0.3, logp.shape)
  example = example.replace(old_per_token_logps=jnp.asarray(old, jnp.float32))
  config = rj_tunix.LabelGRPOConfig(policy_loss_fn=objective, tau=0.3,
                                    num_generations=G)
  config.temperature = temperature  # set by GRPOLearner from the rollout config
  loss_fn = function_registry.get_policy_loss_fn(objective)
  loss, aux = loss_fn(model, example, algo_config=config, pad_id=tasks.PAD,
                      eos_id=tasks.EOS)

  def grouped(x):
    return np.asarray(x).reshape(3, G, *np.shape(x)[1:])
  direct, _ = losses.get(objective)(
      jnp.asarray(grouped(logp), jnp.float32), jnp.asarray(grouped(old), jnp.float32),
      jnp.asarray(grouped(mask)), jnp.asarray(grouped(rewards)), tau=0.3)
  np.testing.assert_allclose(float(loss), float(direct), rtol=2e-6)
  # An independent float64 NumPy reference, written from docs/derivations.md.
  ref = reference.label_loss(objective, grouped(logp), grouped(old),
                             grouped(mask), grouped(rewards), tau=0.3)
  np.testing.assert_allclose(float(loss), ref, rtol=2e-5)
  assert float(aux["pg_loss"]) == float(loss)
  assert float(aux["pg_clipfrac"]) == 0.0
  # Groups 0 and 2 are mixed, group 1 is all correct.
  np.testing.assert_allclose(float(aux["real_jax/mixed_group_fraction"]), 2 / 3)
  assert np.isfinite(float(aux["entropy"]))


def test_adapter_gradient_equals_real_jax_gradient():
  rng = np.random.default_rng(1)
  model = tiny_qwen3()
  rewards = np.array([1, 0, 0, 1, 0, 1, 1, 1], np.float32)
  example, mask = make_example(rng, 2, rewards)
  config = rj_tunix.LabelGRPOConfig(num_generations=G)
  config.temperature = 1.0
  loss_fn = function_registry.get_policy_loss_fn("real")

  def via_adapter(m):
    return loss_fn(m, example, algo_config=config, pad_id=tasks.PAD,
                   eos_id=tasks.EOS)[0]

  def direct(m):
    logp = tunix_logps(m, example, 1.0).reshape(2, G, -1)
    return losses.real(logp, jax.lax.stop_gradient(logp),
                       jnp.asarray(mask).reshape(2, G, -1),
                       jnp.asarray(rewards).reshape(2, G), tau=0.5)[0]

  g_adapter = nnx.grad(via_adapter)(model)
  g_direct = nnx.grad(direct)(model)
  leaves_a, leaves_d = jax.tree.leaves(g_adapter), jax.tree.leaves(g_direct)
  assert len(leaves_a) == len(leaves_d) > 0
  for a, d in zip(leaves_a, leaves_d, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=1e-5, atol=1e-7)
  assert max(float(jnp.abs(a).max()) for a in leaves_a) > 0


@pytest.mark.parametrize("objective", losses.ADVANTAGE_LOSSES)
def test_every_advantage_objective_through_the_adapter(objective):
  """Loss and gradient of `real_jax_<name>` equal real_jax.losses.<name> on the same logps."""
  rng = np.random.default_rng(3)
  model = tiny_qwen3()
  rewards = np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0], np.float32)
  example, mask = make_example(rng, 3, rewards)
  example = example.replace(advantages=jnp.asarray(rj_tunix.raw_rewards(rewards, G)))
  old = np.asarray(tunix_logps(model, example, 1.0)) + rng.normal(0, 0.3, mask.shape)
  example = example.replace(old_per_token_logps=jnp.asarray(old, jnp.float32))
  # The options and estimators ride along on the objectives they suit.
  kwargs = {"grpo": {"advantage": "rloo"}, "gspo": {"delta": 1.5},
            "cispo": {"positive_nll": 0.1}, "gpg": {"advantage": "opo"},
            "sapo": {"advantage": "reinforce_pp"}, "dr_grpo": {"advantage": "grpo_passk"},
            "dro": {"loss_agg_mode": "bnpo"}}.get(objective, {})
  if objective == "dapo":
    kwargs = {"clip_ratio_c": 1.5, "loss_agg_mode": "sequence-mean-token-mean"}
  config = rj_tunix.RealJaxGRPOConfig(policy_loss_fn=rj_tunix.PREFIX + objective,
                                      num_generations=G, loss_kwargs=kwargs)
  config.temperature = 1.0
  loss_fn = function_registry.get_policy_loss_fn(rj_tunix.PREFIX + objective)
  grouped = lambda x: jnp.reshape(jnp.asarray(x), (3, G, *np.shape(x)[1:]))  # noqa: E731
  direct_kwargs = dict(kwargs)
  if objective == "dapo":
    direct_kwargs["loss_agg_mode"] = "seq-mean-token-mean"

  def via_adapter(m):
    return loss_fn(m, example, algo_config=config, pad_id=tasks.PAD, eos_id=tasks.EOS)

  def direct(m):
    logp = tunix_logps(m, example, 1.0).astype(jnp.float32)
    return losses.get(objective)(grouped(logp), grouped(old).astype(jnp.float32),
                                 grouped(mask), grouped(rewards), **direct_kwargs)

  (loss, aux), g_adapter = nnx.value_and_grad(via_adapter, has_aux=True)(model)
  (want, want_aux), g_direct = nnx.value_and_grad(direct, has_aux=True)(model)
  np.testing.assert_allclose(float(loss), float(want), rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(float(aux["pg_clipfrac"]), float(want_aux.clip_fraction))
  if kwargs.get("advantage") != "grpo_passk":  # pass@k gives no rollout A < 0
    np.testing.assert_allclose(float(aux["real_jax/mixed_group_fraction"]), 2 / 3)
  leaves_a, leaves_d = jax.tree.leaves(g_adapter), jax.tree.leaves(g_direct)
  assert len(leaves_a) == len(leaves_d) > 0
  for a, d in zip(leaves_a, leaves_d, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=1e-5, atol=1e-7)
  assert max(float(jnp.abs(a).max()) for a in leaves_a) > 0


def test_real_jax_config_validation():
  config = rj_tunix.RealJaxGRPOConfig(num_generations=G)
  assert (config.policy_loss_fn, config.advantage_estimator) == ("real_jax_grpo", "real_jax_rewards")
  assert function_registry.get_policy_loss_fn("grpo") is tunix_algo_core.grpo_loss_fn
  with pytest.raises(ValueError, match="policy_loss_fn"):
    rj_tunix.RealJaxGRPOConfig(policy_loss_fn="grpo", num_generations=G)
  with pytest.raises(ValueError, match="advantage_estimator"):
    rj_tunix.RealJaxGRPOConfig(advantage_estimator="grpo", num_generations=G)
  with pytest.raises(ValueError, match="loss_kwargs"):
    rj_tunix.RealJaxGRPOConfig(loss_kwargs={"tau": 0.5}, num_generations=G)
  with pytest.raises(ValueError, match="finite"):
    rj_tunix.raw_rewards(np.array([1.0, np.nan]), 2)


def test_adapter_refuses_split_groups_and_packing():
  rng = np.random.default_rng(2)
  model = tiny_qwen3()
  example, _ = make_example(rng, 2, np.array([1, 0, 0, 1, 0, 1, 1, 1], np.float32))
  config = rj_tunix.LabelGRPOConfig(num_generations=G)
  loss_fn = function_registry.get_policy_loss_fn("real")
  split = jax.tree.map(lambda x: x[:6], example)
  with pytest.raises(ValueError, match="6 rollouts.*whole groups"):
    loss_fn(model, split, algo_config=config, pad_id=tasks.PAD, eos_id=tasks.EOS)
  packed = example.replace(segment_ids=jnp.zeros_like(example.completion_ids))
  with pytest.raises(ValueError, match="sequence packing"):
    loss_fn(model, packed, algo_config=config, pad_id=tasks.PAD, eos_id=tasks.EOS)


def sharding_case():
  """`(loss, state, example)`: REAL through the adapter on 3 groups of 4, off-policy.

  `loss(state, example)` is the adapter's loss of a tiny Qwen3 whose split
  state is `state`; the sharding tests (8 devices here, 2 processes in
  `tests/scripts/tunix_adapter_multihost.py`) compute it on one device and
  sharded, from this one case.
  """
  model = tiny_qwen3(num_kv_heads=2)
  rewards = np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0], np.float32)
  example, _ = make_example(np.random.default_rng(0), 3, rewards)
  logp = tunix_logps(model, example, 1.0)
  example = example.replace(old_per_token_logps=jax.lax.stop_gradient(logp) + 0.1
                            * jax.random.normal(jax.random.key(1), logp.shape))
  config = rj_tunix.LabelGRPOConfig(num_generations=G, tau=0.3)
  config.temperature = 1.0
  loss_fn = function_registry.get_policy_loss_fn("real")
  graphdef, state = nnx.split(model)

  def loss(state, example):
    return loss_fn(nnx.merge(graphdef, state), example, algo_config=config,
                   pad_id=tasks.PAD, eos_id=tasks.EOS)[0]
  return loss, state, example


SHARDED_SCRIPT = """
import json
import jax, numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import test_tunix as tt

assert jax.device_count() == 8, jax.devices()
loss, state, example = tt.sharding_case()
ref_loss, ref_grad = jax.jit(jax.value_and_grad(loss))(state, example)
# Tunix's layout: parameters by their fsdp/tp annotations, rows over fsdp,
# so each device holds 3 rows and every group of 4 spans two devices.
mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("fsdp", "tp"))
specs = nnx.get_partition_spec(state)
sharded_state = jax.device_put(state, jax.tree.map(
    lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, P)))
sharded_example = jax.tree.map(
    lambda x: jax.device_put(x, NamedSharding(mesh, P("fsdp"))), example)
with jax.set_mesh(mesh):
  got_loss, got_grad = jax.jit(jax.value_and_grad(loss))(sharded_state, sharded_example)
shardings = {str(x.sharding.spec) for x in jax.tree.leaves(sharded_state)}
print("RESULT" + json.dumps({
    "loss": [float(ref_loss), float(got_loss)],
    "grad": [[np.asarray(a).ravel().tolist(), np.asarray(b).ravel().tolist()]
             for a, b in zip(jax.tree.leaves(ref_grad), jax.tree.leaves(got_grad))],
    "sharded_specs": sorted(shardings)}))
"""


@pytest.mark.slow
def test_adapter_on_eight_devices_equals_one():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([root, os.path.join(root, "tests")]))
  proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], capture_output=True, text=True,
                        timeout=600, env=env, cwd=root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split("RESULT", 1)[1])
  ref_loss, got_loss = result["loss"]
  assert ref_loss > 0
  assert_allclose_scaled([got_loss], [ref_loss])
  # Scaled to each leaf's largest entry: on jax 0.12 two entries of 1e-2
  # moved by 7e-6 (the sharded sums' order), which an elementwise tolerance
  # calls a failure.
  for i, (ref, got) in enumerate(result["grad"]):
    assert_allclose_scaled(got, ref, err_msg=f"gradient leaf {i}")
  # The parameters really were split over the mesh.
  assert any("fsdp" in s for s in result["sharded_specs"])
  assert any("tp" in s for s in result["sharded_specs"])


# ------------------------------------------------------------ end to end ----


def test_grpo_learner_trains_two_steps_with_real():
  mesh = one_device_mesh()
  model = tiny_qwen3()
  initial = jax.tree.map(np.array, nnx.state(model, nnx.Param))
  cluster_config = rl_cluster_lib.ClusterConfig(
      role_to_mesh={role: mesh for role in (rl_cluster_lib.Role.ACTOR,
                                            rl_cluster_lib.Role.REFERENCE,
                                            rl_cluster_lib.Role.ROLLOUT)},
      rollout_engine="vanilla",
      offload_to_cpu=False,
      training_config=rl_cluster_lib.RLTrainingConfig(
          actor_optimizer=optax.sgd(0.1), eval_every_n_steps=100, max_steps=2),
      rollout_config=base_rollout.RolloutConfig(
          max_tokens_to_generate=4, max_prompt_length=8, kv_cache_size=16,
          temperature=1.0),
  )
  cluster = rl_cluster_lib.RLCluster(actor=model, reference=None,
                                     tokenizer=TOKENIZER,
                                     cluster_config=cluster_config)
  seen_rewards = []

  def reward(prompts, completions, **kwargs):
    r = parity_reward(prompts, completions, **kwargs)
    seen_rewards.append(r)
    return r

  config = grpo_learner.GRPOConfig(policy_loss_fn="real", num_generations=G,
                                   beta=0.0)
  learner = grpo_learner.GRPOLearner(rl_cluster=cluster, algo_config=config,
                                     reward_fns=[reward])
  rj_tunix.log_diagnostics(learner)
  prompts = [TASK.problem(np.random.default_rng(i))[0] for i in range(8)]
  dataset = [{"prompts": np.array(prompts[i:i + 2])} for i in range(0, 8, 2)]
  learner.train(dataset)

  history = cluster.actor_trainer.metrics_logger.get_metric_history
  step_losses = np.asarray(history("actor", "loss", "train"))
  assert step_losses.shape == (2,) and np.all(np.isfinite(step_losses))
  # On-policy REAL is a constant in value: log(1+P) + log(1+N) per mixed group,
  # averaged over the groups of the step. Check the first step against it.
  groups = np.asarray(seen_rewards[0]).reshape(-1, G)
  mixed = (groups.min(-1) == 0) & (groups.max(-1) == 1)
  assert mixed.any()
  expected = np.sum(np.where(mixed, np.log1p(groups.sum(-1)) +
                             np.log1p(G - groups.sum(-1)), 0)) / len(groups)
  np.testing.assert_allclose(step_losses[0], expected, rtol=1e-5)
  assert np.asarray(history("actor", "real_jax/mixed_group_fraction", "train"))[0] \
      == pytest.approx(mixed.mean())
  trained = nnx.state(cluster.actor_trainer.model, nnx.Param)
  changes = [float(np.max(np.abs(np.asarray(a) - b)))
             for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(initial), strict=True)]
  assert all(np.isfinite(changes)) and max(changes) > 1e-4


# ------------------------------------------------- the 1.5B recipe driver ----


def test_recipe_is_the_papers_setting():
  c = recipe.get_config()
  assert (c.loss, c.tau, c.beta) == ("real", 0.5, 0.0)
  assert (c.group_size, c.prompts_per_step, c.updates_per_step) == (8, 128, 4)
  assert c.lr == 2e-6
  assert (c.rollout.temperature, c.rollout.max_response_tokens) == (0.6, 8192)
  assert c.model.config == "deepseek_r1_distill_qwen_1p5b"
  tunix_train.check_config(c)
  config = tunix_train.algo_config(c)
  assert isinstance(config, rj_tunix.LabelGRPOConfig)
  assert (config.policy_loss_fn, config.tau, config.num_generations) == ("real", 0.5, 8)
  with pytest.raises(ValueError, match="variant"):
    recipe.get_config("huge")


def test_recipe_config_errors(tmp_path):
  c = recipe.get_config()
  with pytest.raises(ValueError, match="data.train"):
    tunix_train.run(c, str(tmp_path / "run"))
  c.beta = 0.04
  with pytest.raises(ValueError, match="reference model"):
    tunix_train.run(c, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")
  c = recipe.get_config()
  c.loss = "real_jax_dapo"
  c.loss_kwargs = ml_collections.ConfigDict({"clip_ratio_c": 3.0})
  algo = tunix_train.algo_config(c)
  assert isinstance(algo, rj_tunix.RealJaxGRPOConfig)
  assert (algo.policy_loss_fn, algo.loss_kwargs) == ("real_jax_dapo", {"clip_ratio_c": 3.0})
  c.loss = "ppo"
  with pytest.raises(ValueError, match="`loss` must be one of"):
    tunix_train.check_config(c)
  c = recipe.get_config()
  c.updates_per_step = 3
  with pytest.raises(ValueError, match="updates_per_step"):
    tunix_train.check_config(c)
  c = recipe.get_config()
  c.micro_batch_prompts = 5
  with pytest.raises(ValueError, match="micro_batch_prompts"):
    tunix_train.check_config(c)


def test_load_records_and_prepare(tmp_path):
  rows = [{"problem": "1+1?", "answer": "2"}, {"problem": "x" * 200, "answer": 3}]
  (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  (tmp_path / "a.json").write_text(json.dumps(rows))
  assert tunix_train.load_records(str(tmp_path / "a.jsonl")) == rows
  assert tunix_train.load_records(str(tmp_path / "a.json")) == rows
  for bad, match in [("missing.json", "does not exist"), ("a.csv", "must end in")]:
    (tmp_path / "a.csv").write_text("problem,answer\n")
    with pytest.raises(ValueError, match=match):
      tunix_train.load_records(str(tmp_path / bad))
  cfg = recipe.get_config("toy")
  tokenizer = tunix_train.load_tokenizer(cfg.model)
  prompts, answers = tunix_train.prepare(rows, cfg.data, tokenizer, 64)
  assert (prompts, answers) == (["1+1?"], ["2"])  # the long one is dropped
  cfg.data.answer_key = "solution"
  with pytest.raises(ValueError, match="'solution' column"):
    tunix_train.prepare(rows, cfg.data, tokenizer, 64)


def test_prompt_batches_are_seeded_and_reiterable():
  prompts = [f"p{i}" for i in range(10)]
  batches = tunix_train.PromptBatches(prompts, [str(i) for i in range(10)], 4,
                                      seed=3, epochs=2)
  first, again = list(batches), list(batches)
  assert len(first) == 4  # 2 full batches per epoch, the remainder dropped
  for a, b in zip(first, again, strict=True):
    np.testing.assert_array_equal(a["prompts"], b["prompts"])
  assert all(isinstance(b["prompts"], np.ndarray) for b in first)
  # Answers stay aligned with their prompts.
  for b in first:
    assert [p[1:] for p in b["prompts"]] == list(b["answer"])
  assert len({p for b in first[:2] for p in b["prompts"]}) == 8  # no repeats in an epoch
  with pytest.raises(ValueError, match="batch_size"):
    tunix_train.PromptBatches(prompts[:2], ["0", "1"], 4)


@pytest.mark.slow
def test_toy_recipe_trains_checkpoints_and_resumes(tmp_path):
  cfg = recipe.get_config("toy")  # trains on experiments/data/toy_math.jsonl
  assert os.path.isabs(cfg.data.train) and os.path.exists(cfg.data.train)
  cfg.data.eval = cfg.data.train
  cfg.eval_every = 2
  workdir = str(tmp_path / "run")
  learner = tunix_train.run(cfg, workdir)
  trainer = learner.rl_cluster.actor_trainer
  # 2 steps of 4 prompts, 2 updates each.
  assert (trainer.train_steps, learner.rl_cluster.global_steps) == (4, 2)
  # The held-out reward (the math verifier on eval rollouts), every 2 updates.
  held_out = learner.rl_cluster._rl_metrics_logger.get_metric_history(  # pylint: disable=protected-access
      "rewards", "reward_fn", "eval")
  assert len(held_out) == 2 and np.all((0 <= held_out) & (held_out <= 1))
  losses_run1 = trainer.metrics_logger.get_metric_history("actor", "loss", "train")
  assert len(losses_run1) == 4 and np.all(np.isfinite(losses_run1))
  assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "tensorboard"]
  assert any(f.startswith("events") for _, _, files in os.walk(
      os.path.join(workdir, "tensorboard")) for f in files)

  # A longer rerun resumes from the checkpoint: only the missing updates run.
  cfg.steps = 3
  learner = tunix_train.run(cfg, workdir)
  trainer = learner.rl_cluster.actor_trainer
  assert trainer.train_steps == 6
  assert len(trainer.metrics_logger.get_metric_history("actor", "loss", "train")) == 2
