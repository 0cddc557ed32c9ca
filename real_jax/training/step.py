r"""One RL step in JAX, shared by every driver.

  step = make_step(cfg, graphdef)
  state = init_state(make_optimizer(cfg), params, jax.random.key(seed), lr)
  state, metrics = step(state, tau)           # pure: jit, scan, vmap it

A step draws `B = prompts_per_step` training prompts from the seeded stream
(`real_jax.training.data`), samples `G = group_size` rollouts each with the
KV-cached sampler, verifies them, and runs `ppo_epochs x minibatches` AdamW
updates on whole groups (each epoch a fresh permutation of the groups). It
returns the `real_jax.training.metrics.STEP_METRICS` of that step.

`tau` is an argument and the learning rate lives in the optimizer state
(`optax.inject_hyperparams`), so both can be traced: a sweep vmaps one
program over seeds, temperatures and learning rates.

Shape letters: `B` groups per step, `G` rollouts per group, `b` groups per
minibatch, `U` updates per step, `P` prompt and `R` response tokens.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import ml_collections
import optax

from real_jax import losses
from real_jax import metric_names
from real_jax import sampling
from real_jax.training import base_model as base_model_lib
from real_jax.training import config as config_lib
from real_jax.training import data
from real_jax.training import metrics as metrics_lib

__all__ = [
    "TrainState",
    "make_optimizer",
    "init_state",
    "make_update",
    "make_step",
    "minibatch_orders",
    "scan_steps",
    "make_evaluate",
]


class TrainState(NamedTuple):
  """What a run carries from step to step (and what a checkpoint holds).

  Attributes:
    params: the policy's parameters (`nnx.State`).
    opt_state: the optimizer state, learning rate included.
    key: the run's PRNG key, `key(seed)`; step t uses `fold_in(key, t)`.
    step: int32 scalar, the number of steps done.
    lagged: with `config.sampler_lag` k > 0, the parameters the sampler uses
      next and after (the policy before each of the last k steps, oldest
      first); `()` without a lag.
  """
  params: Any
  opt_state: Any
  key: jax.Array
  step: jax.Array
  lagged: tuple = ()


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Clipped AdamW whose learning rate is a hyperparameter of its state."""

  def adamw(learning_rate):
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                       optax.adamw(learning_rate, weight_decay=cfg.weight_decay))
  return optax.inject_hyperparams(adamw)(learning_rate=cfg.lr)


def init_state(optimizer: optax.GradientTransformation, params, key: jax.Array,
               lr, lag: int = 0) -> TrainState:
  """The state before step 1; `lr` may be traced (vmapped over in sweeps).

  With a sampler `lag` of k steps, the first k steps sample from `params`,
  the base model, as an asynchronous engine does before its first weight sync.
  """
  opt_state = optimizer.init(params)
  # float32 whatever jax_enable_x64 says, so the updates keep the parameters' dtype.
  hyper = dict(opt_state.hyperparams, learning_rate=jnp.asarray(lr, jnp.float32))
  # Copies of the containers (the arrays are shared): a checkpoint restores each in place.
  lagged = tuple(jax.tree.map(lambda x: x, params) for _ in range(lag))
  return TrainState(params, opt_state._replace(hyperparams=hyper), key,
                    jnp.zeros((), jnp.int32), lagged)


def _logprob_temperature(cfg: ml_collections.ConfigDict) -> float:
  """The temperature the trainer's log-probabilities are taken at: the sampling one, 1 for greedy."""
  return cfg.temperature if cfg.temperature > 0 else 1.0


def make_update(cfg: ml_collections.ConfigDict, graphdef: nnx.GraphDef,
                optimizer: optax.GradientTransformation, prompt_len: int):
  """The minibatch update, a pure function:

  `update(params, opt_state, tokens, old_logp, mask, rewards, tau, behaviour_logp=None)
  -> (params, opt_state, out)`

  with `tokens [b, G, P+R]`, `old_logp, mask [b, G, R]`, `rewards [b, G]`;
  `behaviour_logp [b, G, R]` are the sampler's log-probabilities where they
  differ from `old_logp` (the config's `correction` reads both).
  `out` holds the loss, the gradient norm, the mean token entropy, and what
  the mechanism metrics need: per-rollout `weights` and `scores`, the clipped
  fraction and the KL estimate. The weights are `dL/dlogp` summed over each
  rollout's tokens (times b), taken from the same backward pass as the
  parameter gradient, through a zero offset added to `logp`.
  """
  def with_tau(name, kwargs):
    fn = functools.partial(losses.get(name), **kwargs)
    takes_tau = "tau" in losses.hyperparameters(name)  # read from the signature, as for yours
    return lambda tau: functools.partial(fn, tau=tau) if takes_tau else fn

  base_loss = with_tau(cfg.loss, config_lib.loss_kwargs(cfg))
  compare_loss = with_tau(cfg.compare_loss, {}) if cfg.get("compare_loss") else None
  temperature = _logprob_temperature(cfg)
  correct = functools.partial(losses.rollout_correction, cfg.correction,
                              cap=cfg.correction_cap, kl_threshold=cfg.correction_kl)

  def update(params, opt_state, tokens, old_logp, mask, rewards, tau, behaviour_logp=None):
    b, g = rewards.shape
    behaviour_logp = old_logp if behaviour_logp is None else behaviour_logp

    def objective(p, offset, loss_fn=None):
      loss_fn = loss_fn or base_loss(tau)
      logp, entropy = sampling.response_logprobs(
          graphdef, p, tokens.reshape(b * g, -1), prompt_len, temperature)
      logp = logp.reshape(b, g, -1) + offset
      fixed = correct(logp, old_logp, behaviour_logp, mask, rewards)
      loss, aux = loss_fn(fixed.logp, old_logp, fixed.mask, rewards)
      flat_mask = mask.reshape(b * g, -1)
      mean_entropy = jnp.sum(jnp.where(flat_mask, entropy, 0.0)) / jnp.maximum(mask.sum(), 1)
      return loss, (logp, mean_entropy, aux, fixed.changed_fraction)

    offset = jnp.zeros(old_logp.shape, old_logp.dtype)
    (loss, (logp, entropy, aux, changed)), (grads, token_grads) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True)(params, offset)
    cosine = jnp.full((), jnp.nan, jnp.float32)
    if compare_loss is not None:  # the same minibatch, before this update moves the policy
      other = jax.grad(lambda p: objective(p, offset, compare_loss(tau))[0])(params)
      norms = optax.tree.norm(grads) * optax.tree.norm(other)
      cosine = jnp.where(norms > 0, optax.tree.vdot(grads, other) / jnp.maximum(norms, 1e-30),
                         jnp.nan)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    s = jnp.where(mask, jax.lax.stop_gradient(logp) - old_logp, 0.0)
    n_tokens = jnp.maximum(jnp.sum(mask), 1)
    negative = mask & (rewards <= 0.5)[..., None]
    ratio_neg = jnp.where(negative, jnp.exp(s), jnp.nan).reshape(-1)
    out = {
        "loss": loss, "entropy": entropy, "grad_norm": optax.tree.norm(grads),
        "weights": jnp.sum(jnp.where(mask, token_grads, 0.0), axis=-1) * b,
        "scores": losses.sequence_scores(logp, old_logp, mask),
        "rewards": rewards, "present": jnp.any(mask, axis=-1),
        "clip_fraction": getattr(aux, "clip_fraction", jnp.zeros((), jnp.float32)),
        "kl_old": jnp.sum(jnp.where(mask, jnp.expm1(s) - s, 0.0)) / n_tokens,
        "corrected_fraction": changed,
        "grad_cosine": cosine,
        **dict(zip(metric_names.RATIO_NEG, jnp.nanpercentile(
            ratio_neg, jnp.asarray(metric_names.RATIO_NEG_QUANTILES, s.dtype)), strict=True)),
    }
    return params, opt_state, out

  return update


def make_step(cfg: ml_collections.ConfigDict, graphdef: nnx.GraphDef, mesh: Mesh | None = None):
  """Returns `step(state, tau) -> (state, metrics)`, one RL step (see the module docstring).

  With a `mesh`, the step's groups are sharded over its `data` axis, whole
  groups per device (`prompts_per_step` must be a multiple of its size); the
  losses reduce over the global batch, so every count stays global.
  """
  config_lib.validate(cfg)
  task = data.make_task(cfg)
  data.check_task(task)
  B, G, R = cfg.prompts_per_step, cfg.group_size, task.max_response
  if mesh is not None and B % mesh.shape["data"]:
    raise ValueError(f"`prompts_per_step` ({B}) must be a multiple of the mesh's data axis "
                     f"({mesh.shape['data']}): groups are never split across devices.")
  optimizer = make_optimizer(cfg)
  update = make_update(cfg, graphdef, optimizer, task.prompt_len)
  mb = B // cfg.minibatches
  # The mismatch regime: the sampler is the policy's weights rounded to, and
  # computed in, bfloat16; the trainer recomputes pi_old in its own precision.
  mismatch = cfg.sampler_dtype != "float32"
  sampler_graphdef = (base_model_lib.graphdef(cfg, task, cfg.sampler_dtype) if mismatch
                      else graphdef)
  temperature = _logprob_temperature(cfg)

  lag = cfg.get("sampler_lag", 0)

  def sampler_params(state):
    params = state.lagged[0] if lag else state.params
    if not mismatch:
      return params
    dtype = jnp.dtype(cfg.sampler_dtype)
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                        else x, params)

  def constrain(x):
    if mesh is None:
      return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec("data")))

  def step(state: TrainState, tau) -> tuple[TrainState, dict]:
    t = state.step + 1
    _, k_sample, k_order = data.step_keys(state.key, t)
    prompts, targets, target_len = data.train_batch(task, state.key, t, B)
    rollout = sampling.sample(sampler_graphdef, sampler_params(state),
                              constrain(jnp.repeat(prompts, G, axis=0)), k_sample, max_new=R,
                              temperature=cfg.temperature, top_p=cfg.top_p, **task.special_ids)
    rewards = constrain(task.jax_rewards(rollout.response, jnp.repeat(targets, G, axis=0),
                                         jnp.repeat(target_len, G, axis=0)).reshape(B, G))
    tokens = constrain(rollout.tokens.reshape(B, G, -1))
    mask = constrain(rollout.mask.reshape(B, G, -1))
    behaviour_logp = constrain(rollout.logp.reshape(B, G, -1))
    if mismatch and not lag:
      recomputed, _ = sampling.response_logprobs(graphdef, state.params, rollout.tokens,
                                                 task.prompt_len, temperature)
      old_logp = constrain(jnp.where(mask, recomputed.reshape(B, G, -1), 0.0))
    else:  # the sampler's own log-probabilities: with a lag, pi_old is the lagged policy
      old_logp = behaviour_logp
    orders = minibatch_orders(k_order, B, cfg.ppo_epochs, mb)

    def one_update(carry, idx):
      params, opt_state = carry
      params, opt_state, out = update(params, opt_state, tokens[idx], old_logp[idx], mask[idx],
                                      rewards[idx], tau, behaviour_logp[idx])
      return (params, opt_state), out

    (params, opt_state), outs = jax.lax.scan(one_update, (state.params, state.opt_state), orders)
    last = jax.tree.map(lambda x: x[-1], outs)
    truncated = ~jnp.any(rollout.response == task.special_ids["eos_id"], -1).reshape(B, G)
    metrics = metrics_lib.step_metrics(
        rewards=rewards, response_mask=mask, truncated=truncated, losses=outs["loss"],
        grad_norms=outs["grad_norm"],
        mismatch=losses.mismatch_stats(old_logp, behaviour_logp, mask),
        entropy=outs["entropy"][0], last=last)
    lagged = state.lagged[1:] + (state.params,) if lag else ()
    return TrainState(params, opt_state, state.key, t, lagged), metrics

  return step


def minibatch_orders(key: jax.Array, groups: int, epochs: int, minibatch: int) -> jax.Array:
  """`[epochs * groups // minibatch, minibatch]` group indices, one row per update.

  Each epoch visits every group once, in a fresh order drawn from
  `fold_in(key, epoch)`, split into minibatches of whole groups.
  """
  return jnp.concatenate([jax.random.permutation(jax.random.fold_in(key, e), groups)
                          for e in range(epochs)]).reshape(-1, minibatch)


def scan_steps(step, state: TrainState, tau, n: int) -> tuple[TrainState, dict]:
  """`n` calls of `step` as one `lax.scan`: the unit both drivers run (metrics stacked `[n]`)."""
  return jax.lax.scan(lambda s, _: step(s, tau), state, None, length=n)


def make_evaluate(cfg: ml_collections.ConfigDict, graphdef: nnx.GraphDef):
  """Returns `evaluate(params) -> {EVAL_METRICS name: value}` on fixed held-out sets (pure).

  `eval_pass_at_1` is measured on `eval_size` prompts of `eval_split`;
  `test_pass_at_1` on `test_size` prompts of the test split, or NaN (null in
  the records) when `test_size` is 0. With `sampled_k > 0`, the
  `SAMPLED_METRICS` on those test prompts; NaN otherwise.
  """
  config_lib.validate(cfg)
  task = data.make_task(cfg)
  data.check_task(task)
  sets = {metric_names.EVAL_METRIC: data.eval_set(task, cfg.eval_seed, cfg.eval_size,
                                                 cfg.eval_split)}
  if cfg.test_size:
    sets[metric_names.TEST_METRIC] = data.eval_set(task, cfg.eval_seed, cfg.test_size, "test")
  k = cfg.get("sampled_k", 0)

  def pass_at_1(params, prompts, targets, target_len):
    rollout = sampling.sample(graphdef, params, prompts, jax.random.key(cfg.eval_seed),
                              max_new=task.max_response, temperature=cfg.eval_temperature,
                              **task.special_ids)
    return jnp.mean(task.jax_rewards(rollout.response, targets, target_len))

  def sampled(params, prompts, targets, target_len):
    # Another key than the greedy evaluation's, fixed: every evaluation of
    # every run scores the same draws of the sampler's noise.
    many = lambda x: jnp.repeat(x, k, axis=0)  # noqa: E731
    rollout = sampling.sample(graphdef, params, many(prompts),
                              jax.random.fold_in(jax.random.key(cfg.eval_seed), 1),
                              max_new=task.max_response, temperature=cfg.temperature,
                              top_p=cfg.top_p, **task.special_ids)
    correct = task.jax_rewards(rollout.response, many(targets), many(target_len)) > 0.5
    _, entropy = sampling.response_logprobs(graphdef, params, rollout.tokens, task.prompt_len,
                                            cfg.temperature)
    mask = rollout.mask
    return dict(zip(metric_names.SAMPLED_METRICS, (
        jnp.mean(correct), jnp.mean(jnp.any(correct.reshape(-1, k), -1)),
        jnp.sum(jnp.where(mask, entropy, 0.0)) / jnp.maximum(jnp.sum(mask), 1)), strict=True))

  def evaluate(params) -> dict[str, jax.Array]:
    out = {m: jnp.full((), jnp.nan, jnp.float32) for m in metric_names.EVAL_METRICS}
    out.update({m: pass_at_1(params, *s).astype(jnp.float32) for m, s in sets.items()})
    if k:
      out.update({m: v.astype(jnp.float32) for m, v in
                  sampled(params, *sets[metric_names.TEST_METRIC]).items()})
    return out

  return evaluate
