"""The one step, its metrics, the data stream and the two drivers over it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import domination
from real_jax import losses
from real_jax import metric_names
from real_jax import model as model_lib
from real_jax import sampling
from real_jax import tasks
from real_jax.training import base_model
from real_jax.training import config as config_lib
from real_jax.training import data
from real_jax.training import loop
from real_jax.training import metrics
from real_jax.training import scan
from real_jax.training import step as step_lib

QUIET = dict(log=lambda _: None)


def _close(a, b, rtol=2e-5, atol=2e-6) -> bool:
  if a is None or b is None:
    return a is None and b is None
  return abs(a - b) <= atol + rtol * abs(b)


def assert_same_records(got: list[dict], want: list[dict]) -> None:
  assert [r["step"] for r in got] == [r["step"] for r in want]
  for g, w in zip(got, want, strict=True):
    assert list(g) == list(metric_names.METRICS)
    bad = {k: (g[k], w[k]) for k in metric_names.METRICS if not _close(g[k], w[k])}
    assert not bad, f"step {w['step']}: {bad}"


# ------------------------------------------------------------ base model ----


class TestBaseModel:

  def test_build_then_reuse(self, tiny_config, tmp_path):
    cfg = tiny_config()
    cfg.base.dir = str(tmp_path)  # its own folder: other tests may have built the shared one
    built, reused = [], []
    _, params, info = base_model.build_base_model(cfg, log=built.append)
    assert any(line.startswith("building base model") for line in built), built
    assert info["steps"] == 15
    assert os.path.exists(os.path.join(base_model.base_model_dir(cfg), "info.json"))
    _, again, info2 = base_model.build_base_model(cfg, log=reused.append)
    assert not reused and info2 == info
    chex.assert_trees_all_equal(nnx.to_pure_dict(params), nnx.to_pure_dict(again))
    other = tiny_config()
    other.model.width = 24
    assert base_model.base_model_dir(other) != base_model.base_model_dir(cfg)


class TestValidation:

  @pytest.mark.parametrize("overrides, match", [
      (dict(minibatches=3), "must be divisible by `minibatches`"),
      (dict(loss="ppo"), "`config.loss`: unknown loss 'ppo'; known losses: bce, "),
      (dict(loss="no_such_module:f"), "`config.loss`: loss 'no_such_module:f': cannot import"),
      (dict(loss="dro", loss_kwargs={"epsilon_high": 0.2}),
       "`config.loss_kwargs` sets epsilon_high, which 'dro' does not take; it takes dro_beta, "),
      (dict(tau=0.0), "`config.tau` must be > 0"),
      (dict(lr=-1.0), "`config.lr` must be > 0"),
      (dict(eval_every=0), "`config.eval_every` must be an integer >= 1"),
  ])
  def test_bad_config(self, tiny_config, tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
      loop.train(tiny_config(**overrides), str(tmp_path), **QUIET)


@pytest.mark.parametrize("args, says", [
    (["--config=experiments/configs/nope.py"], "error: --config: [Errno 2] No such file"),
    (["--config.dro_beta=0.05"], "no field 'dro_beta'. It is a loss hyperparameter: "
                                 "--config.loss_kwargs.dro_beta=VALUE."),
    (["--config.stpes=3"], "no field 'stpes'. Did you mean 'steps'?"),
    (["--config.loss=dro", "--config.loss_kwargs.epsilon_high=0.2"],
     "sets epsilon_high, which 'dro' does not take; it takes dro_beta, "),
])
def test_a_command_line_mistake_is_one_line_not_a_traceback(args, says, tmp_path):
  tiny = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "experiments", "configs", "tiny.py")
  argv = [a.replace("experiments/configs/nope.py", str(tmp_path / "nope.py")) for a in args]
  if not any(a.startswith("--config=") for a in argv):
    argv = [f"--config={tiny}", *argv]
  out = subprocess.run([sys.executable, "-m", "real_jax.train", *argv,
                        f"--workdir={tmp_path / 'run'}"], capture_output=True, text=True,
                       timeout=120, check=False)
  assert out.returncode != 0
  assert "Traceback" not in out.stderr, out.stderr[-2000:]
  assert says in out.stderr, out.stderr[-2000:]
  assert not os.path.exists(tmp_path / "run" / "metrics.jsonl")

# ------------------------------------------------------------------ data ----


class TestDataStream:

  def test_training_prompts_depend_on_seed_and_step_only(self, tiny_config):
    task = data.make_task(tiny_config())
    a = data.train_batch(task, jax.random.key(0), 3, 8)[0]
    chex.assert_trees_all_equal(a, data.train_batch(task, jax.random.key(0), 3, 8)[0])
    assert not np.array_equal(a, data.train_batch(task, jax.random.key(0), 4, 8)[0])
    assert not np.array_equal(a, data.train_batch(task, jax.random.key(1), 3, 8)[0])

  def test_held_out_set_is_fixed_and_disjoint_from_training(self, tiny_config):
    cfg = tiny_config(task={"name": "addition", "kwargs": {"digits": 2}}, eval_size=64)
    task = data.make_task(cfg)
    held = data.eval_set(task, cfg.eval_seed, cfg.eval_size)[0]
    chex.assert_shape(held, (64, task.prompt_len))
    # The same for any run of the config: it depends on eval_seed alone.
    chex.assert_trees_all_equal(held, data.eval_set(task, cfg.eval_seed, cfg.eval_size)[0])
    texts = lambda p: {task.tokenizer.decode(row[1:]) for row in np.asarray(p)}  # noqa: E731
    held_texts = texts(held)
    assert all(task.is_held_out(t) for t in held_texts)
    seen = set()
    for seed in range(3):
      for t in range(1, 40):
        seen |= texts(data.train_batch(task, jax.random.key(seed), t, 16)[0])
    assert len(seen) > 500  # most of the 1000 problems: the check has teeth
    assert seen.isdisjoint(held_texts)
    # Validation and test: the two halves of the held-out split, disjoint from each
    # other and from training.
    val = texts(data.eval_set(task, cfg.eval_seed, 128, "validation")[0])
    test = texts(data.eval_set(task, cfg.eval_seed, 128, "test")[0])
    assert len(val) > 60 and len(test) > 60
    assert val.isdisjoint(test) and val.isdisjoint(seen) and test.isdisjoint(seen)
    assert {task.held_out_part(t) for t in val} == {"validation"}
    assert {task.held_out_part(t) for t in test} == {"test"}
    assert all(task.is_held_out(t) for t in val | test)

  def test_test_set_needs_the_validation_split(self, tiny_config, tmp_path):
    with pytest.raises(ValueError, match="`eval_split` must be 'validation'"):
      step_lib.make_evaluate(tiny_config(test_size=8), None)


  def test_sampled_evaluation_against_numpy(self, tiny_config):
    # The sampled metrics recomputed from the documented draws: the host's
    # reward (not the JAX one) and the entropy from the logits in NumPy. 16
    # prompts x 6 draws at temperature 1.3: enough that some prompt has a
    # correct draw and none has only correct ones (pass@k is not pass@1 or
    # "all correct"), and a temperature that is not 1.
    n, k, temp = 16, 6, 1.3
    cfg = tiny_config(eval_split="validation", test_size=n, sampled_k=k, temperature=temp)
    graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
    got = jax.jit(step_lib.make_evaluate(cfg, graphdef))(params)
    task = data.make_task(cfg)
    prompts, targets, target_len = data.eval_set(task, cfg.eval_seed, n, "test")
    many = np.repeat(np.asarray(prompts), k, axis=0)
    r = sampling.sample(graphdef, params, jnp.asarray(many),
                        jax.random.fold_in(jax.random.key(cfg.eval_seed), 1),
                        max_new=task.max_response, temperature=temp, **task.special_ids)
    answers = [task.tokenizer.decode(np.asarray(t)[:length]) for t, length in zip(
        np.repeat(np.asarray(targets), k, 0), np.repeat(np.asarray(target_len), k, 0), strict=True)]
    correct = task.rewards(np.asarray(r.response), answers).reshape(n, k) > 0.5
    assert correct.mean() < correct.any(1).mean() and correct.all(1).mean() < correct.any(1).mean()
    logits = np.asarray(model_lib.apply(graphdef, params, r.tokens), np.float64) / temp
    logits = logits[:, task.prompt_len - 1:-1]
    logz = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)
                           ) - logits.max(-1, keepdims=True)
    entropy = -(np.exp(logz) * logz).sum(-1)
    mask = np.asarray(r.mask)
    np.testing.assert_allclose(got["test_sampled_pass_at_1"], correct.mean(), rtol=1e-6)
    np.testing.assert_allclose(got["test_sampled_pass_at_k"], correct.any(1).mean(), rtol=1e-6)
    np.testing.assert_allclose(got["probe_entropy"], entropy[mask].mean(), rtol=1e-4)
    assert 0 < float(got["probe_entropy"]) < np.log(task.tokenizer.vocab_size)
    # Without sampled_k: undefined, the greedy metrics unchanged.
    plain = jax.jit(step_lib.make_evaluate(tiny_config(eval_split="validation", test_size=n),
                                           graphdef))(params)
    assert all(np.isnan(plain[m]) for m in metric_names.SAMPLED_METRICS)
    assert float(plain["test_pass_at_1"]) == float(got["test_pass_at_1"])

  @pytest.mark.parametrize("k, test_size, says", [(-1, 4, "must be an integer >= 0"),
                                                  (2, 0, "needs `test_size` > 0")])
  def test_sampled_k_is_validated(self, tiny_config, k, test_size, says):
    cfg = tiny_config(eval_split="validation", test_size=test_size, sampled_k=k)
    with pytest.raises(ValueError, match=f"`config.sampled_k`.*{says}"):
      config_lib.validate(cfg)


# --------------------------------------------------------------- metrics ----


class TestStepMetrics:
  """`metrics.step_metrics` against a NumPy computation on hand-made inputs."""

  def inputs(self):
    rng = np.random.default_rng(0)
    rewards = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], np.float32)
    weights = np.array([[0.5, -2.0, -1.0, 0.25], [-0.1, -0.3, -0.6, 0.0],
                        [0.2, 0.2, 0.2, 0.2]], np.float32)
    scores = rng.normal(size=(3, 4)).astype(np.float32)
    present = np.ones((3, 4), bool)
    present[1, 3] = False
    mask = rng.random((3, 4, 5)) < 0.7
    return rewards, weights, scores, present, mask

  truncated = np.array([[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], bool)

  def test_against_numpy(self):
    rewards, weights, scores, present, mask = self.inputs()
    last = dict(weights=weights, scores=scores, rewards=rewards, present=present,
                clip_fraction=np.float32(0.25), kl_old=np.float32(0.01))
    got = jax.jit(functools.partial(metrics.step_metrics))(
        rewards=rewards, response_mask=mask, truncated=self.truncated,
        losses=np.array([1.0, 3.0], np.float32),
        grad_norms=np.array([2.0, 4.0], np.float32), entropy=np.float32(0.7), last=last)
    assert set(got) == set(metric_names.STEP_METRICS)
    pos = present & (rewards > 0.5)
    neg = present & (rewards <= 0.5)
    w = np.abs(weights)
    length = mask.sum(-1)
    # Group 0: negatives 2.0 and 1.0 -> top share 2/3; group 1: 0.1, 0.3, 0.6 (the
    # absent fourth ignored) -> 0.6; group 2 has no negatives.
    want = {
        "loss": 2.0, "grad_norm": 3.0, "entropy": 0.7, "reward_mean": rewards.mean(),
        "response_length": mask.sum(-1).mean(), "mixed_group_fraction": 1 / 3,
        "solve_all_fraction": 1 / 3, "score_pos_mean": scores[pos].mean(),
        "score_neg_mean": scores[neg].mean(), "weight_pos_mean": w[pos].mean(),
        "weight_neg_mean": w[neg].mean(), "weight_neg_max": 2.0,
        "neg_top_share": (2 / 3 + 0.6) / 2, "neg_dominated_fraction": 1.0,
        "clip_fraction": 0.25, "kl_old": 0.01,
        "length_correct": length[rewards > 0.5].mean(), "length_wrong": length[rewards < 0.5].mean(),
        "length_wrong_max": length[rewards < 0.5].max(), "truncated_fraction": 3 / 12,
        "score_abs_p50": np.median(np.abs(scores[present])),
        "score_abs_p90": np.percentile(np.abs(scores[present]), 90),
        "score_abs_max": np.abs(scores[present]).max(), "grad_norm_max": 4.0,
        **{f"weight_pos_p{q}": np.percentile(w[pos], q) for q in metric_names.PERCENTILES},
        **{f"weight_neg_p{q}": np.percentile(w[neg], q) for q in metric_names.PERCENTILES},
    }
    for k, v in want.items():
      np.testing.assert_allclose(got[k], v, rtol=1e-6, err_msg=k)
      assert got[k].dtype == jnp.float32, k
    # No compare_loss: no cosine; with one, the update's cosine passes through.
    assert np.isnan(got["grad_cosine"])
    with_cosine = metrics.step_metrics(
        rewards=rewards, response_mask=mask, truncated=self.truncated, losses=np.ones(1),
        grad_norms=np.ones(1), entropy=np.float32(1), last={**last, "grad_cosine": 0.25})
    assert float(with_cosine["grad_cosine"]) == 0.25
    assert all(np.isnan(got[k]) for k in metric_names.RATIO_NEG)  # none given: undefined

  def test_net_weight_per_pass_rate_bin_against_numpy(self):
    # Eight groups of 5, pass rates 0, 1/5, 2/5, 3/5, 1, 4/5, and 1/4 (the
    # bin's closed upper end) and 2/3 with rollouts absent: every bin, and
    # groups that are not mixed (left out).
    rng = np.random.default_rng(1)
    rewards = np.array([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 0, 1, 0],
                        [1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 0, 0, 0, 1], [1, 1, 0, 0, 1]],
                       np.float32)
    present = np.ones((8, 5), bool)
    present[6, 4] = present[7, 3:] = False
    weights = rng.normal(size=(8, 5)).astype(np.float32)
    last = dict(weights=weights, scores=np.zeros((8, 5), np.float32), rewards=rewards,
                present=present, clip_fraction=np.float32(0), kl_old=np.float32(0))
    got = metrics.step_metrics(rewards=rewards, response_mask=np.ones((8, 5, 3), bool),
                               truncated=np.zeros((8, 5), bool), losses=np.ones(1),
                               grad_norms=np.ones(1), entropy=np.float32(1), last=last)
    net = {}
    for g in range(8):
      r, w = rewards[g][present[g]], weights[g][present[g]]
      if 0 < r.mean() < 1:
        upper = int(np.ceil(r.mean() * 4 - 1e-9)) * 25  # bins (0, 25], (25, 50], ...
        net.setdefault(upper, []).append(w.sum())
    assert sorted(net) == [25, 50, 75, 100] and len(net[25]) == 2 and len(net[75]) == 2
    for upper, values in net.items():
      np.testing.assert_allclose(got[f"net_weight_pass_{upper}"], np.mean(values), rtol=1e-5)

  def test_on_policy_real_net_weight_is_the_baseline_shift(self):
    # REAL on-policy (scores 0) in groups of 8 with k = 1..7 correct: the net
    # weight (1/tau) [(G-k)/(G+1-k) - k/(1+k)] by hand, averaged in each bin.
    g, tau = 8, 0.5
    rewards = (np.arange(g)[None, :] < np.arange(1, g)[:, None]).astype(np.float32)
    weights = np.stack([np.asarray(jax.grad(lambda s, r=r: losses.real_group(
        s, r > 0.5, r <= 0.5, tau=tau)[0])(jnp.zeros(g))) for r in rewards])
    last = dict(weights=weights, scores=np.zeros_like(weights), rewards=rewards,
                present=np.ones_like(rewards, bool), clip_fraction=np.float32(0),
                kl_old=np.float32(0))
    got = metrics.step_metrics(rewards=rewards, response_mask=np.ones((g - 1, g, 2), bool),
                               truncated=np.zeros((g - 1, g), bool), losses=np.ones(1),
                               grad_norms=np.ones(1), entropy=np.float32(1), last=last)
    shift = {k: ((g - k) / (g + 1 - k) - k / (1 + k)) / tau for k in range(1, g)}
    assert shift[1] == pytest.approx(0.75) and shift[7] == pytest.approx(-0.75)
    for upper, ks in ((25, (1, 2)), (50, (3, 4)), (75, (5, 6)), (100, (7,))):
      np.testing.assert_allclose(got[f"net_weight_pass_{upper}"],
                                 np.mean([shift[k] for k in ks]), rtol=1e-5, atol=1e-7)

  def test_undefined_metrics_are_null_in_strict_json(self):
    rewards, weights, scores, present, mask = self.inputs()
    rewards = np.zeros_like(rewards)  # no positive rollout anywhere
    last = dict(weights=weights, scores=scores, rewards=rewards, present=present,
                clip_fraction=np.float32(0), kl_old=np.float32(0))
    got = metrics.step_metrics(rewards=rewards, response_mask=mask, truncated=self.truncated,
                               losses=np.ones(1),
                               grad_norms=np.ones(1), entropy=np.float32(1), last=last)
    recs = metrics.records({k: np.asarray(v)[None] for k, v in got.items()}, 7,
                           {7: {"eval_pass_at_1": 0.5}})
    assert list(recs[0]) == list(metric_names.METRICS)
    for k in ("score_pos_mean", "weight_pos_mean", "weight_pos_p50", "length_correct"):
      assert recs[0][k] is None, k
    assert recs[0]["weight_neg_max"] == pytest.approx(2.0)
    assert recs[0]["eval_pass_at_1"] == 0.5 and recs[0]["test_pass_at_1"] is None
    json.loads(json.dumps(recs[0], allow_nan=False))  # raises on NaN

  def test_records_number_consecutive_steps_and_attach_each_eval_to_its_step(self):
    # Three steps from step 3 (a scanned chunk): each value and eval lands on its own step.
    values = {k: np.arange(3, dtype=np.float32) + 10 * j
              for j, k in enumerate(metrics.STEP_METRICS)}
    recs = metrics.records(values, 3, {4: {"eval_pass_at_1": 0.25}, 9: {"eval_pass_at_1": 1.0}})
    assert [r["step"] for r in recs] == [3, 4, 5]
    first = metrics.STEP_METRICS[0]
    assert [r[first] for r in recs] == [0.0, 1.0, 2.0]
    assert [r["eval_pass_at_1"] for r in recs] == [None, 0.25, None]
    assert [r["step"] for r in metrics.records(None, 0, {0: {"eval_pass_at_1": 0.5}})] == [0]

  def test_metric_names_are_checked(self):
    assert metric_names.name("kl_old") == "kl_old"
    with pytest.raises(ValueError, match="not a metric of the schema"):
      metric_names.name("mixed_group_frac")

  @pytest.mark.parametrize("steps, every, want", [(4, 2, (0, 2, 4)), (5, 2, (0, 2, 4, 5)),
                                                  (3, 10, (0, 3)), (3, 1, (0, 1, 2, 3))])
  def test_eval_steps(self, steps, every, want):
    assert metrics.eval_steps(steps, every) == want

  @pytest.mark.parametrize("every", [0, -2])
  def test_eval_every_below_one_is_refused(self, every):
    with pytest.raises(ValueError, match="`eval_every` must be >= 1"):
      metrics.eval_steps(4, every)


class StepMetricsVariantsTest(chex.TestCase):
  """The same metrics with and without jit (NaN for the undefined ones in both)."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_and_eager_agree(self):
    rewards = np.array([[1, 0, 0], [0, 0, 0]], np.float32)
    last = dict(weights=np.array([[0.5, -1.5, -0.5], [-1.0, -1.0, -2.0]], np.float32),
                scores=np.array([[0.1, 0.2, -0.3], [0.0, 0.4, 0.5]], np.float32),
                rewards=rewards, present=np.ones((2, 3), bool),
                clip_fraction=np.float32(0.0), kl_old=np.float32(0.0))
    fn = self.variant(lambda r, loss: metrics.step_metrics(
        rewards=r, response_mask=np.ones((2, 3, 4), bool), truncated=np.zeros((2, 3), bool),
        losses=np.ones(2, np.float32),
        grad_norms=np.ones(2, np.float32), entropy=np.float32(0.5), last=loss))
    got = fn(rewards, last)
    # Group 0: negatives 1.5, 0.5 -> 0.75; group 1: 1, 1, 2 -> 0.5.
    np.testing.assert_allclose(got["neg_top_share"], (0.75 + 0.5) / 2, rtol=1e-6)
    np.testing.assert_allclose(got["neg_dominated_fraction"], 0.5)  # 0.75 > 1/2, 0.5 is not
    np.testing.assert_allclose(got["weight_neg_max"], 2.0)
    np.testing.assert_allclose(got["score_pos_mean"], 0.1, rtol=1e-6)
    chex.assert_shape(got["kl_old"], ())


# ------------------------------------------------------------------ step ----


class TestUpdate:

  @pytest.mark.parametrize("loss, extra", [("real", {}), ("grpo", {}),
                                           ("gmpo", {"advantage": "rloo"}),
                                           ("dapo", {"clip_ratio_c": 1.5})])
  def test_weights_scores_and_kl_are_what_they_say(self, tiny_config, loss, extra):
    cfg = tiny_config(loss=loss)
    cfg.loss_kwargs.update(extra)
    assert config_lib.loss_kwargs(cfg) == extra  # the config's field reaches the loss
    graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
    task = data.make_task(cfg)
    optimizer = step_lib.make_optimizer(cfg)
    state = step_lib.init_state(optimizer, params, jax.random.key(0), cfg.lr)
    b, g, R = 2, 4, task.max_response
    prompts = jnp.repeat(data.train_batch(task, jax.random.key(0), 1, b)[0], g, axis=0)
    r = sampling.sample(graphdef, params, prompts, jax.random.key(1), max_new=R, **task.special_ids)
    tokens, mask = r.tokens.reshape(b, g, -1), r.mask.reshape(b, g, -1)
    # Off-policy on purpose: old log-probs shifted per rollout.
    old = (r.logp.reshape(b, g, -1)
           + 0.3 * jax.random.normal(jax.random.key(2), (b, g, 1), jnp.float32)) * mask
    rewards = jnp.asarray([[1, 0, 0, 1], [0, 1, 0, 0]], jnp.float32)
    update = step_lib.make_update(cfg, graphdef, optimizer, task.prompt_len)
    _, _, out = jax.jit(update)(state.params, state.opt_state, tokens, old, mask, rewards,
                                jnp.float32(0.5))
    # Independent path: differentiate the loss with respect to logp directly.
    logp, _ = sampling.response_logprobs(graphdef, params, r.tokens, task.prompt_len)
    logp = logp.reshape(b, g, -1)
    kwargs = {"tau": 0.5} if "tau" in losses.hyperparameters(loss) else extra
    token_grads = jax.grad(lambda lp: losses.get(loss)(lp, old, mask, rewards, **kwargs)[0])(logp)
    want_w = np.asarray(jnp.sum(jnp.where(mask, token_grads, 0), -1)) * b
    np.testing.assert_allclose(out["weights"], want_w, rtol=1e-4, atol=1e-7)
    s = np.where(mask, np.asarray(logp, np.float64) - np.asarray(old, np.float64), 0.0)
    n = np.asarray(mask).sum(-1)
    np.testing.assert_allclose(out["scores"], s.sum(-1) / n, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["kl_old"], np.sum(np.where(mask, np.expm1(s) - s, 0)) / n.sum(),
                               rtol=1e-3)
    assert float(out["kl_old"]) > 1e-3  # off-policy: the estimate is not trivially 0
    # The wrong rollouts' token ratios, against NumPy's quantiles.
    wrong = np.asarray(mask) & (np.asarray(rewards) <= 0.5)[..., None]
    np.testing.assert_allclose([float(out[k]) for k in metric_names.RATIO_NEG],
                               np.percentile(np.exp(s[wrong]), [10, 50, 90, 100]), rtol=1e-4)
    if loss == "real":  # bounded by 1/tau
      assert np.abs(np.asarray(out["weights"])).max() <= 2.0 + 1e-6


def _step_one_and_its_batch(cfg, sampler_dtype="float32"):
  """Step 1 of seed 5 through the trainer, and its batch drawn again outside it.

  Returns `(metrics, prompts, rollout, graphdef, params, task)`: the rollout
  re-sampled from the same stream with the same key, by the policy at
  `sampler_dtype` (its weights rounded to it), an independent path to the
  batch the step trained on.
  """
  graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
  task = data.make_task(cfg)
  state = step_lib.init_state(step_lib.make_optimizer(cfg), params, jax.random.key(5), cfg.lr)
  _, m = jax.jit(step_lib.make_step(cfg, graphdef))(state, jnp.float32(cfg.tau))
  prompts = data.train_batch(task, jax.random.key(5), 1, cfg.prompts_per_step)[0]
  _, k_sample, _ = data.step_keys(jax.random.key(5), 1)
  dtype = jnp.dtype(sampler_dtype)
  r = sampling.sample(base_model.graphdef(cfg, task, sampler_dtype),
                      jax.tree.map(lambda x: x.astype(dtype), params),
                      jnp.repeat(prompts, cfg.group_size, axis=0), k_sample,
                      max_new=task.max_response, temperature=cfg.temperature, **task.special_ids)
  return m, prompts, r, graphdef, params, task


@pytest.mark.xdist_group("on_policy_batch")  # one worker samples the module's batch once
class TestStep:

  def test_rewards_are_the_python_verifiers_on_the_shared_stream(self, tiny_config):
    # Step 1 drawn again from the stream and verified with the string verifier.
    m, prompts, r, _, _, task = _step_one_and_its_batch(tiny_config(prompts_per_step=8))
    answers = []
    for row in np.asarray(prompts):
      a, b = task.tokenizer.decode(row[1:])[:-1].split("+")
      answers += [str(int(a) + int(b))] * 4
    rewards = task.rewards(np.asarray(r.response), answers).reshape(8, 4)
    np.testing.assert_allclose(m["reward_mean"], rewards.mean(), rtol=1e-6)
    correct = rewards > 0.5
    np.testing.assert_allclose(m["mixed_group_fraction"],
                               (correct.any(-1) & ~correct.all(-1)).mean(), rtol=1e-6)
    length = np.asarray(r.mask).sum(-1).reshape(8, 4)
    np.testing.assert_allclose(m["response_length"], length.mean(), rtol=1e-6)
    np.testing.assert_allclose(m["length_wrong"], length[~correct].mean(), rtol=1e-6)
    np.testing.assert_allclose(m["length_wrong_max"], length[~correct].max(), rtol=1e-6)
    truncated = ~(np.asarray(r.response) == tasks.EOS).any(-1)
    np.testing.assert_allclose(m["truncated_fraction"], truncated.mean(), rtol=1e-6)

  def test_mismatch_regime_samples_in_bfloat16_and_trains_against_pi_old(self, tiny_config):
    # The step's mismatch statistics against an independent path: the batch
    # re-sampled with the weights rounded to bfloat16, then scored by the
    # float32 policy. IcePop with a band of [1/1.005, 1.005] masks some tokens.
    cfg = tiny_config(prompts_per_step=8, sampler_dtype="bfloat16", correction="icepop",
                      correction_cap=1.005)
    m, _, r, graphdef, params, task = _step_one_and_its_batch(cfg, "bfloat16")
    old, _ = sampling.response_logprobs(graphdef, params, r.tokens, task.prompt_len)
    mask = np.asarray(r.mask)
    log_rho = (np.asarray(old, np.float64) - np.asarray(r.logp, np.float64))[mask]
    np.testing.assert_allclose(m["mismatch_kl"], np.mean(np.expm1(log_rho) - log_rho),
                               rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(m["is_ratio_max"], np.exp(log_rho.max()), rtol=1e-5)
    assert float(m["mismatch_kl"]) > 0 and float(m["is_ratio_min"]) < 1 < float(m["is_ratio_max"])
    # The band is narrow enough that some tokens leave it and some stay (the
    # metric is the last minibatch's share, not the batch's, so it is bounded,
    # not compared).
    outside = np.abs(log_rho) > np.log(cfg.correction_cap)
    assert 0 < outside.mean() < 1
    assert 0 < float(m["corrected_fraction"]) < 1
    # The float32 sampler is the trainer's own policy: no mismatch at all.
    f32 = tiny_config(prompts_per_step=8)
    state = step_lib.init_state(step_lib.make_optimizer(f32), params, jax.random.key(5), f32.lr)
    _, m32 = jax.jit(step_lib.make_step(f32, graphdef))(state, jnp.float32(cfg.tau))
    assert float(m32["mismatch_kl"]) == 0 and float(m32["is_ratio_max"]) == 1
    assert float(m32["corrected_fraction"]) == 0

  def test_on_policy_real_dominates_no_group(self, on_policy_batch):
    # On-policy REAL gives every wrong rollout of a group the same weight
    # 1/(tau (1 + |O-|)), so the top share is 1/|O-|: exactly 1/2 with two
    # wrong rollouts, which is no domination whatever rounding makes of the sum.
    _, _, out = _one_update(on_policy_batch, loss="real")
    neg = np.asarray(out["present"]) & (np.asarray(out["rewards"]) <= 0.5)
    assert neg.sum(-1).tolist() == [2, 3]
    share, counted = domination.top_share(out["weights"], jnp.asarray(neg))
    np.testing.assert_allclose(share, [1 / 2, 1 / 3], rtol=1e-5)
    mask = on_policy_batch[-1][2]
    got = metrics.step_metrics(
        rewards=out["rewards"], response_mask=mask, truncated=jnp.zeros(neg.shape, bool),
        losses=jnp.ones(1), grad_norms=jnp.ones(1), entropy=out["entropy"], last=out)
    assert float(got["neg_dominated_fraction"]) == 0.0
    assert float(got["neg_top_share"]) == pytest.approx((1 / 2 + 1 / 3) / 2, rel=1e-5)

  @pytest.mark.parametrize("loss", sorted(losses.LOSSES))
  def test_one_on_policy_update_for_every_loss(self, on_policy_batch, loss):
    # The first update after sampling is on-policy: the trainer's log-probs
    # must equal the sampler's, so every score is 0, nothing is clipped and the
    # KL is 0, whatever the loss. One update on one sampled batch checks it.
    _, _, out = _one_update(on_policy_batch, loss=loss)
    for k in ("loss", "entropy", "grad_norm", "kl_old", "clip_fraction"):
      assert np.isfinite(float(out[k])), k
    assert abs(float(out["kl_old"])) < 1e-6
    if loss in ("clip_cov", "kl_cov"):
      # Their clip fraction counts the tokens the covariance rule selects (as
      # verl's pg_clipfrac does), one at least, on-policy too; no ratio is cut.
      assert 0 < float(out["clip_fraction"]) < 0.1
    else:
      assert float(out["clip_fraction"]) == 0.0
    np.testing.assert_allclose(out["scores"], 0.0, atol=1e-5)
    assert float(out["entropy"]) > 0.1
    assert float(out["grad_norm"]) > 0  # mixed groups: every loss has a gradient

  def test_minibatch_orders_are_fresh_permutations(self):
    orders = np.asarray(step_lib.minibatch_orders(jax.random.key(0), 8, 3, 2))
    assert orders.shape == (12, 2)
    epochs = orders.reshape(3, 8)
    for e in epochs:
      assert sorted(e) == list(range(8))  # every group once per epoch
    assert len({tuple(e) for e in epochs}) == 3  # a new order each epoch
    assert not np.array_equal(epochs[0], np.arange(8))
    other = np.asarray(step_lib.minibatch_orders(jax.random.key(1), 8, 3, 2))
    assert not np.array_equal(orders, other)  # drawn from the step's key

  @pytest.mark.slow
  def test_one_step_of_the_loop(self, tiny_config, tmp_path):
    """The host loop's records, evaluation and TensorBoard events after one on-policy step."""
    cfg = tiny_config(loss="grpo", steps=1, minibatches=1, eval_every=1)
    result = loop.train(cfg, str(tmp_path), **QUIET)
    recs = metrics.read_metrics(str(tmp_path))
    assert [r["step"] for r in recs] == [0, 1] and result.steps == 1
    m = recs[1]
    assert list(m) == list(metric_names.METRICS)
    for k in ("loss", "reward_mean", "entropy", "grad_norm", "kl_old", "clip_fraction",
              "eval_pass_at_1"):
      assert m[k] is not None and np.isfinite(m[k]), k
    assert abs(m["kl_old"]) < 1e-6 and m["clip_fraction"] == 0.0
    assert os.listdir(os.path.join(str(tmp_path), "tb"))


@pytest.fixture(scope="session")
def on_policy_batch(tiny_config):
  """One sampled batch of 2 mixed groups of 4, its old log-probs the sampler's own."""
  cfg = tiny_config(minibatches=1)
  graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
  task = data.make_task(cfg)
  b, g = 2, 4
  prompts = jnp.repeat(data.train_batch(task, jax.random.key(0), 1, b)[0], g, axis=0)
  r = sampling.sample(graphdef, params, prompts, jax.random.key(1), max_new=task.max_response,
                      temperature=cfg.temperature, **task.special_ids)
  rewards = jnp.asarray([[1, 0, 0, 1], [0, 1, 0, 0]], jnp.float32)
  batch = (r.tokens.reshape(b, g, -1), r.logp.reshape(b, g, -1), r.mask.reshape(b, g, -1),
           rewards)
  return cfg, graphdef, params, task, batch


@pytest.mark.xdist_group("on_policy_batch")
@pytest.mark.parametrize("compare", ["real", "grad", "grpo"])
def test_compare_loss_logs_the_gradients_cosine_and_trains_as_without(on_policy_batch, compare):
  cfg, graphdef, params, task, (tokens, old, mask, rewards) = on_policy_batch
  b, g = rewards.shape

  def gradient(name):  # an independent path: no correction, no offset, no optimizer
    def loss(p):
      logp, _ = sampling.response_logprobs(graphdef, p, tokens.reshape(b * g, -1),
                                           task.prompt_len, cfg.temperature)
      kwargs = {"tau": cfg.tau} if "tau" in losses.hyperparameters(name) else {}
      return losses.get(name)(logp.reshape(b, g, -1), old, mask, rewards, **kwargs)[0]
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.grad(loss)(params))])

  x, y = gradient("real"), gradient(compare)
  want = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))
  _, plain, out_plain = _one_update(on_policy_batch, loss="real")
  _, new, out = _one_update(on_policy_batch, loss="real", compare_loss=compare)
  np.testing.assert_allclose(float(out["grad_cosine"]), want, rtol=2e-5, atol=2e-6)
  assert (want > 0.999) == (compare == "real")  # GRAD drops the negatives; GRPO weighs otherwise
  assert np.isnan(float(out_plain["grad_cosine"]))
  # A diagnostic only: the same update, up to XLA fusing the two backward passes differently.
  np.testing.assert_allclose(new, plain, rtol=1e-5, atol=1e-9)


def test_compare_loss_is_validated(tiny_config):
  with pytest.raises(ValueError, match="`config.compare_loss`: unknown loss 'nope'"):
    config_lib.validate(tiny_config(compare_loss="nope"))
  with pytest.raises(ValueError, match="`config.compare_loss` must be a loss name"):
    config_lib.validate(tiny_config(compare_loss=None))


class TestLaggedSampler:

  def _steps(self, cfg, graphdef, params, n):
    step = jax.jit(step_lib.make_step(cfg, graphdef))
    state = step_lib.init_state(step_lib.make_optimizer(cfg), params, jax.random.key(3), cfg.lr,
                                cfg.sampler_lag)
    out = []
    for _ in range(n):
      before = state
      state, m = step(state, jnp.float32(cfg.tau))
      out.append((before, m))
    return out

  def test_rollouts_come_from_the_policy_k_steps_earlier(self, tiny_config):
    cfg = tiny_config(prompts_per_step=16, minibatches=1, sampler_lag=2, lr=3e-3)
    graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
    lagged = self._steps(cfg, graphdef, params, 6)
    # Step t samples with the policy before step t - 2 (the base model for t <= 2):
    # the same key and step through a lag-0 step with those parameters draw the
    # same rollouts, so the rewards and lengths agree exactly.
    plain = step_lib.make_step(tiny_config(prompts_per_step=16, minibatches=1, lr=3e-3), graphdef)
    for t, (before, m) in enumerate(lagged, start=1):
      source = lagged[max(t - 3, 0)][0].params
      state = before._replace(params=source, lagged=())
      _, want = jax.jit(plain)(state, jnp.float32(cfg.tau))
      for k in ("reward_mean", "response_length", "length_wrong"):
        np.testing.assert_array_equal(m[k], want[k], err_msg=f"step {t} {k}")
    # pi_old is the sampler's: from step 3 on the one update is off the trainer's policy.
    assert float(lagged[0][1]["kl_old"]) < 1e-6 and float(lagged[3][1]["kl_old"]) > 1e-6
    # The buffer before step t holds the policies before steps t-2 and t-1, oldest first.
    leaves = lambda p: jax.tree.leaves(p)  # noqa: E731
    for t, (before, _) in enumerate(lagged, start=1):
      for i, held in enumerate(before.lagged):
        want = lagged[max(t - 3 + i, 0)][0].params
        for x, y in zip(leaves(held), leaves(want), strict=True):
          np.testing.assert_array_equal(x, y, err_msg=f"step {t}, slot {i}")
    # The policy moved between steps the buffer holds side by side, so a buffer
    # in the wrong order would show above.
    moved = [not all(np.array_equal(x, y) for x, y in zip(
        leaves(lagged[i][0].params), leaves(lagged[i + 1][0].params), strict=True))
        for i in range(len(lagged) - 1)]
    assert sum(moved[:-1]) >= 2, moved

  def test_without_a_lag_nothing_changes(self, tiny_config):
    cfg = tiny_config(prompts_per_step=8, minibatches=1)
    graphdef, params, _ = base_model.build_base_model(cfg, **QUIET)
    (_, m0), = self._steps(cfg, graphdef, params, 1)
    assert step_lib.init_state(step_lib.make_optimizer(cfg), params, jax.random.key(3),
                               cfg.lr).lagged == ()
    assert float(m0["kl_old"]) < 1e-6

  @pytest.mark.slow
  def test_both_drivers_and_a_resume_agree(self, tiny_config, tmp_path):
    # The lagged parameters are part of the checkpoint: a run killed after step
    # 3 (checkpoint at 2) and resumed logs what the uninterrupted run and the
    # scanned driver log.
    cfg = tiny_config(steps=5, sampler_lag=2, seed=4, lr=3e-3)
    full = str(tmp_path / "full")
    loop.train(cfg, full, **QUIET)
    interrupted = str(tmp_path / "interrupted")
    loop.train(cfg, interrupted, stop_after=3, **QUIET)
    lines = []
    loop.train(cfg, interrupted, log=lines.append)
    assert any("resumed from step 2" in line for line in lines)
    assert metrics.read_metrics(interrupted) == metrics.read_metrics(full)
    runs, _ = scan.run_points(cfg, [cfg.seed], **QUIET)
    assert_same_records(metrics.read_metrics(full),
                        metrics.run_records(scan.point(runs, 0), cfg.steps, cfg.eval_every))
    assert max(r["kl_old"] for r in metrics.read_metrics(full)[3:]) > 1e-6

  def test_bad_lag(self, tiny_config):
    with pytest.raises(ValueError, match="`config.sampler_lag` must be an integer >= 0"):
      config_lib.validate(tiny_config(sampler_lag=-1))


def test_domination_is_more_than_half_beyond_rounding():
  # Both ways: two equal weights (share 1/2, rounded either side) are not
  # domination; a weight 1% above all the others together is.
  w = jnp.asarray([[0.3, 0.3, 0.0], [1 / 3, 1 / 3, 0.0], [1.01, 0.5, 0.5]], jnp.float32)
  members = jnp.asarray([[True, True, False], [True, True, False], [True, True, True]])
  share, counted = domination.top_share(w, members)
  assert counted.all()
  assert domination.dominated(share).tolist() == [False, False, True]
  half = np.float32(0.5)
  assert not domination.dominated(np.nextafter(half, np.float32(1)))
  assert domination.dominated(np.float32(0.5001))


# ------------------------------------------------- what one update applies ----


def _one_update(on_policy_batch, *, batch=None, tau=None, **overrides):
  """The parameters before and after one update of `on_policy_batch`'s config with `overrides`."""
  cfg, graphdef, params, task, sampled = on_policy_batch
  cfg = cfg.copy_and_resolve_references()
  cfg.update(overrides)
  optimizer = step_lib.make_optimizer(cfg)
  state = step_lib.init_state(optimizer, params, jax.random.key(0), cfg.lr)
  update = step_lib.make_update(cfg, graphdef, optimizer, task.prompt_len)
  new, _, out = jax.jit(update)(state.params, state.opt_state, *(batch or sampled),
                                jnp.float32(cfg.tau if tau is None else tau))
  flat = lambda p: np.concatenate([np.ravel(x) for x in jax.tree.leaves(p)])  # noqa: E731
  return flat(params), flat(new), out


@pytest.mark.xdist_group("on_policy_batch")
class TestUpdateMechanics:
  """What the optimizer and the update apply, each against what it should do."""

  def test_weight_decay_is_applied(self, on_policy_batch):
    # AdamW: the decay adds -lr * wd * p to whatever the Adam step is.
    p0, plain, _ = _one_update(on_policy_batch, lr=1e-3, weight_decay=0.0)
    _, decayed, _ = _one_update(on_policy_batch, lr=1e-3, weight_decay=0.1)
    np.testing.assert_allclose(decayed - plain, -1e-3 * 0.1 * p0, rtol=0.02, atol=2e-8)

  def test_gradient_is_clipped_by_global_norm(self, on_policy_batch):
    # Adam's first step is about lr * sign(g) however large g is, unless g is
    # clipped far below Adam's epsilon (1e-8): then it is about lr * |g| / 1e-8.
    p0, free, _ = _one_update(on_policy_batch, lr=1e-3, grad_clip=1.0)
    _, clipped, _ = _one_update(on_policy_batch, lr=1e-3, grad_clip=1e-12)
    assert np.max(np.abs(free - p0)) > 0.5e-3
    assert np.max(np.abs(clipped - p0)) < 1e-6

  def test_the_traced_tau_is_the_one_used(self, on_policy_batch):
    _, _, traced = _one_update(on_policy_batch, loss="real", tau=2.0)  # config's tau is 0.5
    cfg = on_policy_batch[0].copy_and_resolve_references()
    cfg.tau = 2.0
    _, _, own = _one_update((cfg, *on_policy_batch[1:]), loss="real")
    _, _, half = _one_update(on_policy_batch, loss="real", tau=0.5)
    assert on_policy_batch[0].tau == 0.5
    # On-policy every score is 0, so REAL's loss does not depend on tau, but its
    # weights are 1 / (tau (1 + |O-|)): four times smaller at tau 2 than at 0.5.
    assert float(traced["grad_norm"]) == float(own["grad_norm"])
    np.testing.assert_allclose(float(half["grad_norm"]) / float(traced["grad_norm"]), 4.0,
                               rtol=1e-4)

  def test_entropy_is_the_sampling_policy_s(self, on_policy_batch):
    # Sampling comes before any update, so the step's entropy (of the first,
    # on-policy update) cannot depend on how many updates follow. The weight
    # decay moves the policy even when every sampled group is all-wrong.
    cfg, graphdef, params, _, _ = on_policy_batch
    entropy = []
    for epochs in (1, 2):
      c = cfg.copy_and_resolve_references()
      c.update(ppo_epochs=epochs, lr=0.1, weight_decay=0.5)
      state = step_lib.init_state(step_lib.make_optimizer(c), params, jax.random.key(0), c.lr)
      _, m = jax.jit(step_lib.make_step(c, graphdef))(state, jnp.float32(c.tau))
      entropy.append(float(m["entropy"]))
    np.testing.assert_allclose(entropy[1], entropy[0], rtol=1e-6)

  def test_the_update_scores_at_the_sampling_temperature(self, on_policy_batch):
    # Sampled at temperature 0.5, the first update is on-policy only if its
    # log-probabilities are taken at 0.5 too.
    cfg, graphdef, params, task, (tokens, _, _, rewards) = on_policy_batch
    b, g = rewards.shape
    r = sampling.sample(graphdef, params, tokens[:, :, :task.prompt_len].reshape(b * g, -1),
                        jax.random.key(2), max_new=task.max_response, temperature=0.5,
                        **task.special_ids)
    batch = (r.tokens.reshape(b, g, -1), r.logp.reshape(b, g, -1), r.mask.reshape(b, g, -1),
             rewards)
    _, _, out = _one_update(on_policy_batch, batch=batch, temperature=0.5)
    np.testing.assert_allclose(out["scores"], 0.0, atol=1e-5)
    assert abs(float(out["kl_old"])) < 1e-6


# --------------------------------------------------------------- drivers ----


@pytest.fixture(scope="session")
def two_drivers(tiny_config, tmp_path_factory):
  """The same config and seed through the resumable loop and the scanned run.

  5 steps with evaluations every 2 (so the scanned run has a remainder chunk)
  and 2 epochs x 2 minibatches, so later updates are off-policy.
  """
  cfg = tiny_config(loss="dapo", steps=5, ppo_epochs=2, seed=3, eval_split="validation",
                    test_size=8)
  workdir = str(tmp_path_factory.mktemp("loop_full"))
  loop.train(cfg, workdir, **QUIET)
  runs, _ = scan.run_points(cfg, [cfg.seed], **QUIET)
  return cfg, workdir, metrics.run_records(scan.point(runs, 0), cfg.steps, cfg.eval_every)


@pytest.mark.xdist_group("drivers")  # one worker builds the module's two runs once
class TestDrivers:

  @pytest.mark.slow
  def test_loop_and_scan_log_the_same_metrics(self, two_drivers):
    cfg, workdir, scanned = two_drivers
    looped = metrics.read_metrics(workdir)
    assert_same_records(looped, scanned)
    evaluated = [r["step"] for r in looped if r["eval_pass_at_1"] is not None]
    assert evaluated == [0, 2, 4, 5]
    # Off-policy updates happened, so the mechanism metrics compared are not zeros:
    # an on-policy update's kl_old is rounding (about 2e-6 in float32); these
    # runs' largest was 1.3e-3.
    assert max(r["kl_old"] for r in looped[1:]) > 1e-4
    assert any(r["reward_mean"] > 0 for r in looped[1:])

  @pytest.mark.slow
  def test_resume_equals_uninterrupted(self, two_drivers, tmp_path):
    cfg, full_dir, _ = two_drivers
    full = metrics.read_metrics(full_dir)
    # Killed after step 3: checkpoint at 2, records already logged for step 3.
    interrupted = str(tmp_path / "interrupted")
    loop.train(cfg, interrupted, stop_after=3, **QUIET)
    assert [r["step"] for r in metrics.read_metrics(interrupted)] == [0, 1, 2, 3]
    lines = []
    loop.train(cfg, interrupted, log=lines.append)
    assert any("resumed from step 2" in line for line in lines)
    assert metrics.read_metrics(interrupted) == full

  @pytest.mark.slow
  def test_corrupt_checkpoint_falls_back(self, two_drivers, tmp_path):
    cfg, full_dir, _ = two_drivers
    workdir = str(tmp_path / "run")
    loop.train(cfg, workdir, stop_after=4, **QUIET)
    latest = os.path.join(workdir, "checkpoints", "4")
    for root, _, files in os.walk(latest):
      for name in files:
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"garbage")
    lines = []
    loop.train(cfg, workdir, log=lines.append)
    assert any("resumed from step 2" in line for line in lines)
    assert any("unreadable" in line for line in lines)
    assert metrics.read_metrics(workdir) == metrics.read_metrics(full_dir)


def test_run_summary_takes_the_first_last_tail_min_and_max():
  recs = [{"step": t, "entropy": float(v)} for t, v in enumerate([5.0, 1.0, 7.0, 2.0, 3.0])]
  spec = [(how, "entropy", how) for how in ("first", "last", "min", "max")]
  assert metrics.summarise_run(recs, spec) == {"first": 5.0, "last": 3.0, "min": 1.0, "max": 7.0}
