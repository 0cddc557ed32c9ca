r"""RLVR training with any loss of `real_jax.losses`, from a supervised base model.

  python -m real_jax.train --config=experiments/configs/addition.py --workdir=DIR \
      [--config.loss=real --config.tau=0.5 ...]

Each step samples `prompts_per_step` prompts x `group_size` rollouts with the
KV-cached sampler, verifies them, and runs `ppo_epochs x minibatches` AdamW
updates (minibatches hold whole groups). Every step is logged to
`DIR/metrics.jsonl` and TensorBoard (`DIR/tb`); checkpoints (parameters,
optimizer state, RNG key, data position, step) go to `DIR/checkpoints` every
`checkpoint_every` steps. Started again with the same command, a run continues
from its last readable checkpoint and logs exactly what an uninterrupted run
would have logged.

The base model is built once per (task, model, base-config) by supervised
training on demonstrations until held-out pass@1 enters `base.band`, saved
with orbax under `base.dir`, and reused by every RL run of that config.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import app
from absl import flags
from absl import logging
from flax import nnx
from ml_collections import config_flags

from real_jax import losses
from real_jax import model as model_lib
from real_jax import sampling
from real_jax import tasks as tasks_lib

METRIC_KEYS = ("step", "loss", "reward_mean", "entropy", "response_length", "grad_norm",
               "mixed_group_fraction", "solve_all_fraction")


# ----------------------------------------------------------------- pieces ----


def make_task(cfg: ml_collections.ConfigDict) -> tasks_lib.Task:
  return tasks_lib.get_task(cfg.task.name, **cfg.task.kwargs.to_dict())


def make_policy(cfg: ml_collections.ConfigDict, task: tasks_lib.Task, seed: int) -> model_lib.Policy:
  m = cfg.model
  policy_cfg = model_lib.PolicyConfig(
      vocab_size=task.tokenizer.vocab_size, max_len=task.prompt_len + task.max_response,
      width=m.width, depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio,
      dtype=jnp.bfloat16 if m.get("compute_dtype", "float32") == "bfloat16" else jnp.float32)
  return model_lib.Policy(policy_cfg, rngs=nnx.Rngs(seed))


def loss_kwargs(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config's static loss hyperparameters that the chosen loss accepts.

  `tau` is not among them: the update takes it as an argument, so that it can
  be traced (vmapped over in sweeps).
  """
  if cfg.loss in losses.LABEL_LOSSES:
    return {}
  kwargs = {}
  for key in ("epsilon_low", "epsilon_high", "loss_agg_mode"):
    value = cfg.get(key)
    if value is not None:
      kwargs[key] = value
  return kwargs


def evaluate(graphdef, params, task: tasks_lib.Task, prompts: np.ndarray, answers, *,
             temperature: float, key) -> float:
  """Held-out pass@1: one response per prompt (greedy when temperature is 0)."""
  rollout = sampling.sample(graphdef, params, jnp.asarray(prompts), key,
                            max_new=task.max_response, temperature=temperature)
  return float(task.rewards(np.asarray(rollout.response), answers).mean())


def _negative_top_share(weights: np.ndarray, rewards: np.ndarray, present: np.ndarray) -> float:
  """Mean share of a group's negative gradient mass on its largest negative."""
  neg = present & (rewards < 0.5)
  mass = np.where(neg, np.abs(weights), 0.0)
  total = mass.sum(-1)
  counted = (neg.sum(-1) >= 2) & (total > 0)
  return float((mass.max(-1)[counted] / total[counted]).mean()) if counted.any() else float("nan")


# ------------------------------------------------------------ base model ----


def base_model_dir(cfg: ml_collections.ConfigDict) -> str:
  spec = json.dumps({"task": cfg.task.to_dict(), "model": cfg.model.to_dict(),
                     "base": {k: v for k, v in cfg.base.to_dict().items() if k != "dir"}},
                    sort_keys=True)
  digest = hashlib.sha256(spec.encode()).hexdigest()[:10]
  return os.path.abspath(os.path.join(cfg.base.dir, f"{cfg.task.name}-{digest}"))


def build_base_model(cfg: ml_collections.ConfigDict, *, log: Callable[[str], None] = print):
  """Supervised warm start on demonstrations, stopped once held-out pass@1 >= band[0].

  Returns `(graphdef, params, info)`; loads the saved model when it exists.
  """
  task = make_task(cfg)
  path = base_model_dir(cfg)
  graphdef, params = nnx.split(make_policy(cfg, task, cfg.base.seed))
  checkpointer = ocp.StandardCheckpointer()
  info_path = os.path.join(path, "info.json")
  if os.path.exists(info_path):
    pure = checkpointer.restore(os.path.join(path, "params"), nnx.to_pure_dict(params))
    nnx.replace_by_pure_dict(params, pure)
    with open(info_path) as f:
      return graphdef, params, json.load(f)

  log(f"building base model for {task.name} in {path}")
  base = cfg.base
  optimizer = optax.adamw(base.lr)
  opt_state = optimizer.init(params)
  p_len = task.prompt_len

  @jax.jit
  def sft_step(params, opt_state, tokens, mask):
    def nll(p):
      logits = model_lib.apply(graphdef, p, tokens)
      logp, _ = model_lib.token_logprobs(logits, tokens)
      logp = logp[:, p_len - 1:]
      return -jnp.sum(jnp.where(mask, logp, 0.0)) / jnp.sum(mask)
    loss, grads = jax.value_and_grad(nll)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  eval_batch = task.batch(base.seed, 0, base.eval_size, "eval")
  length = task.prompt_len + task.max_response
  pass1, step, start = 0.0, 0, time.perf_counter()
  for step in range(1, base.max_steps + 1):
    batch = task.batch(base.seed, step, base.batch_size, "train")
    seqs = np.zeros((base.batch_size, length), np.int32)
    mask = np.zeros((base.batch_size, task.max_response), bool)
    for i, (ids, answer) in enumerate(zip(batch.prompts, batch.answers)):
      answer_ids = task.tokenizer.encode(answer) + [tasks_lib.EOS]
      seqs[i, :p_len] = ids
      seqs[i, p_len:p_len + len(answer_ids)] = answer_ids
      mask[i, :len(answer_ids)] = True
    params, opt_state, loss = sft_step(params, opt_state, jnp.asarray(seqs), jnp.asarray(mask))
    if step % base.eval_every == 0:
      pass1 = evaluate(graphdef, params, task, eval_batch.prompts, eval_batch.answers,
                       temperature=cfg.eval_temperature, key=jax.random.key(0))
      log(f"  base step {step:5d}  nll {float(loss):.3f}  held-out pass@1 {pass1:.3f}  "
          f"{time.perf_counter() - start:.0f}s")
      if pass1 >= base.band[0]:
        break
  info = {"steps": step, "eval_pass_at_1": pass1, "band": list(base.band),
          "in_band": bool(base.band[0] <= pass1 <= base.band[1]), "task": task.name}
  if not info["in_band"]:
    logging.warning("base model ended at pass@1 %.3f, outside the band %s", pass1, base.band)
  tmp = path + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  checkpointer.save(os.path.join(tmp, "params"), nnx.to_pure_dict(params))
  checkpointer.wait_until_finished()
  with open(os.path.join(tmp, "info.json"), "w") as f:
    json.dump(info, f)
  os.replace(tmp, path)  # atomic: a half-built base model is never picked up
  return graphdef, params, info


# ------------------------------------------------------------- RL update ----


def make_update(cfg: ml_collections.ConfigDict, graphdef, optimizer, prompt_len: int):
  """The minibatch update, a pure function (jit it, or call it inside a jitted run):

  `update(params, opt_state, tokens, old_logp, mask, rewards, tau)
     -> (params, opt_state, metrics)`

  with `tokens [b, G, P+R]`, `old_logp, mask [b, G, R]`, `rewards [b, G]`;
  `tau` reaches the label-based losses only.
  """
  base_loss = functools.partial(losses.get(cfg.loss), **loss_kwargs(cfg))
  uses_tau = cfg.loss in losses.LABEL_LOSSES
  temperature = cfg.temperature if cfg.temperature > 0 else 1.0

  def update(params, opt_state, tokens, old_logp, mask, rewards, tau):
    b, g = rewards.shape
    loss_fn = functools.partial(base_loss, tau=tau) if uses_tau else base_loss

    def objective(p):
      logp, entropy = sampling.response_logprobs(
          graphdef, p, tokens.reshape(b * g, -1), prompt_len, temperature)
      logp = logp.reshape(b, g, -1)
      loss, _ = loss_fn(logp, old_logp, mask, rewards)
      flat_mask = mask.reshape(b * g, -1)
      mean_entropy = jnp.sum(jnp.where(flat_mask, entropy, 0.0)) / jnp.maximum(mask.sum(), 1)
      return loss, (logp, mean_entropy)

    (loss, (logp, entropy)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    # How the gradient is shared inside groups: dL/dsbar_k per rollout, x B.
    token_w = jax.grad(lambda lp: loss_fn(lp, old_logp, mask, rewards)[0])(jax.lax.stop_gradient(logp))
    weights = jnp.sum(token_w, axis=-1) * b
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": loss, "entropy": entropy,
                               "grad_norm": optax.tree.norm(grads), "weights": weights}

  return update


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                     optax.adamw(cfg.lr, weight_decay=cfg.weight_decay))


# --------------------------------------------------------- checkpointing ----


class Checkpoints:
  """Orbax checkpoints of the training state; unreadable ones are skipped with a warning."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def save(self, step: int, state: dict, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    self.manager.wait_until_finished()

  def restore_latest(self, template: dict) -> tuple[int, dict, dict] | None:
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        return step, restored.state, restored.meta
      except Exception as e:  # noqa: BLE001  any unreadable checkpoint: fall back
        logging.warning("checkpoint at step %d is unreadable (%s: %s); trying an earlier one",
                        step, type(e).__name__, str(e).splitlines()[0][:200])
        print(f"WARNING: checkpoint {step} unreadable, falling back to an earlier one", flush=True)
    return None

  def close(self):
    self.manager.close()


def _truncate_metrics(path: str, last_step: int) -> None:
  """Drops lines logged after the checkpoint a run resumes from."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
  with open(path, "w") as f:
    f.writelines(lines)


# ------------------------------------------------------------------ train ----


@dataclasses.dataclass
class RunResult:
  workdir: str
  steps: int
  final: dict
  base_info: dict
  seconds: float


def train(cfg: ml_collections.ConfigDict, workdir: str, *, stop_after: int | None = None,
          log: Callable[[str], None] = print) -> RunResult:
  """Runs (or resumes) an RL run; `stop_after` ends this invocation early (tests, demos)."""
  if cfg.loss not in losses.LOSSES:
    raise ValueError(f"`config.loss` must be one of {', '.join(sorted(losses.LOSSES))}; "
                     f"got {cfg.loss!r}.")
  if cfg.prompts_per_step % cfg.minibatches:
    raise ValueError(f"`prompts_per_step` ({cfg.prompts_per_step}) must be divisible by "
                     f"`minibatches` ({cfg.minibatches}): a minibatch holds whole groups.")
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(cfg.to_json_best_effort(indent=1))
  task = make_task(cfg)
  graphdef, params, base_info = build_base_model(cfg, log=log)
  optimizer = make_optimizer(cfg)
  opt_state = optimizer.init(params)
  key = jax.random.key(cfg.seed)
  ckpt = Checkpoints(os.path.join(workdir, "checkpoints"))
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  start_step = 0
  template = {"params": nnx.to_pure_dict(params), "opt_state": opt_state,
              "rng": jax.random.key_data(key)}
  restored = ckpt.restore_latest(template)
  if restored is not None:
    start_step, state, meta = restored
    nnx.replace_by_pure_dict(params, state["params"])
    opt_state = state["opt_state"]
    key = jax.random.wrap_key_data(state["rng"])
    log(f"resumed from step {start_step} (data position {meta['data_index']})")
  _truncate_metrics(metrics_path, start_step)

  update = jax.jit(make_update(cfg, graphdef, optimizer, task.prompt_len))
  eval_batch = task.batch(cfg.eval_seed, 0, cfg.eval_size, "eval")
  B, G = cfg.prompts_per_step, cfg.group_size
  writer = _tensorboard(os.path.join(workdir, "tb"))
  if start_step == 0:  # the base model on the same held-out prompts, as step 0
    base_pass = evaluate(graphdef, params, task, eval_batch.prompts, eval_batch.answers,
                         temperature=cfg.eval_temperature, key=jax.random.key(cfg.eval_seed))
    with open(metrics_path, "a") as f:
      f.write(json.dumps({"step": 0, "eval_pass_at_1": base_pass}) + "\n")
    log(f"[{cfg.loss}] step    0/{cfg.steps}  base model held-out pass@1 {base_pass:.3f}")
  last = {}
  t0 = time.perf_counter()
  end = cfg.steps if stop_after is None else min(cfg.steps, start_step + stop_after)
  for step in range(start_step + 1, end + 1):
    step_key = jax.random.fold_in(key, step)
    batch = task.batch(cfg.seed, step, B, "train")  # data position = step
    prompts = jnp.asarray(np.repeat(batch.prompts, G, axis=0))
    rollout = sampling.sample(graphdef, params, prompts, step_key, max_new=task.max_response,
                              temperature=cfg.temperature, top_p=cfg.top_p)
    answers = [a for a in batch.answers for _ in range(G)]
    rewards = task.rewards(np.asarray(rollout.response), answers).reshape(B, G)
    tokens = rollout.tokens.reshape(B, G, -1)
    mask = rollout.mask.reshape(B, G, -1)
    old_logp = rollout.logp.reshape(B, G, -1)
    order_rng = np.random.default_rng([cfg.seed, step])
    mb = B // cfg.minibatches
    rewards_device = jnp.asarray(rewards)
    logs, weights = [], None
    for _ in range(cfg.ppo_epochs):
      order = order_rng.permutation(B)
      for i in range(cfg.minibatches):
        idx = jnp.asarray(order[i * mb:(i + 1) * mb])
        params, opt_state, out = update(params, opt_state, tokens[idx], old_logp[idx], mask[idx],
                                        rewards_device[idx], cfg.tau)
        logs.append(out)
        # Kept from the step's last update: the most off-policy one, where the
        # objectives' weights differ (on-policy, every s is 0).
        weights = (out["weights"], idx)
    first = logs[0]
    correct = rewards > 0.5
    record = {
        "step": step,
        "loss": float(np.mean([float(o["loss"]) for o in logs])),
        "reward_mean": float(rewards.mean()),
        "entropy": float(first["entropy"]),
        "response_length": float(np.asarray(rollout.mask).sum(-1).mean()),
        "grad_norm": float(np.mean([float(o["grad_norm"]) for o in logs])),
        "mixed_group_fraction": float((correct.any(-1) & ~correct.all(-1)).mean()),
        "solve_all_fraction": float(correct.all(-1).mean()),
    }
    w, idx = weights
    w, r, present = np.asarray(w), rewards[np.asarray(idx)], np.asarray(mask[idx]).any(-1)
    pos, neg = present & (r > 0.5), present & (r < 0.5)
    record["weight_pos_mean"] = float(np.abs(w[pos]).mean()) if pos.any() else float("nan")
    record["weight_neg_mean"] = float(np.abs(w[neg]).mean()) if neg.any() else float("nan")
    record["weight_neg_max"] = float(np.abs(w[neg]).max()) if neg.any() else float("nan")
    record["neg_top_share"] = _negative_top_share(w, r, present)
    for sign, members in (("pos", pos), ("neg", neg)):  # the spread, for plots over training
      for q in (10, 50, 90):
        record[f"weight_{sign}_p{q}"] = (float(np.percentile(np.abs(w[members]), q))
                                         if members.any() else float("nan"))
    if step % cfg.eval_every == 0 or step == cfg.steps:
      record["eval_pass_at_1"] = evaluate(graphdef, params, task, eval_batch.prompts,
                                          eval_batch.answers, temperature=cfg.eval_temperature,
                                          key=jax.random.key(cfg.eval_seed))
    with open(metrics_path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if writer is not None:
      for k, v in record.items():
        if k != "step" and np.isfinite(v):
          writer.add_scalar(k, v, step)
    if step % cfg.checkpoint_every == 0 or step == cfg.steps:
      ckpt.save(step, {"params": nnx.to_pure_dict(params), "opt_state": opt_state,
                       "rng": jax.random.key_data(key)},
                {"step": step, "data_index": step, "loss": cfg.loss})
    last = record
    if step % cfg.log_every == 0 or step == end:
      rate = (step - start_step) / (time.perf_counter() - t0)
      ev = f"  pass@1 {record['eval_pass_at_1']:.3f}" if "eval_pass_at_1" in record else ""
      log(f"[{cfg.loss}] step {step:4d}/{cfg.steps}  reward {record['reward_mean']:.3f}{ev}  "
          f"entropy {record['entropy']:.3f}  loss {record['loss']:+.4f}  {rate:.2f} steps/s")
  if writer is not None:
    writer.close()
  ckpt.close()
  return RunResult(workdir, end, last, base_info, time.perf_counter() - t0)


def _tensorboard(path: str):
  try:
    from tensorboardX import SummaryWriter  # noqa: PLC0415
  except ImportError:  # optional at import time; installed with the package
    logging.warning("tensorboardX is not installed; no TensorBoard events are written")
    return None
  return SummaryWriter(path)


def read_metrics(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------- command ----

def main(argv, config_flag, workdir_flag):
  del argv
  if config_flag.value is None or workdir_flag.value is None:
    raise app.UsageError("--config and --workdir are required.")
  logging.set_verbosity(logging.WARNING)
  result = train(config_flag.value, workdir_flag.value, log=lambda s: print(s, flush=True))
  print(f"done: {result.steps} steps in {result.seconds:.0f}s; metrics in "
        f"{os.path.join(result.workdir, 'metrics.jsonl')}")
  sys.exit(0)


if __name__ == "__main__":
  # Flags are defined here, not at import, so that scripts importing this
  # module (experiments/compare_losses.py) can define their own.
  _config = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                            lock_config=True)
  _workdir = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it exists).")
  app.run(functools.partial(main, config_flag=_config, workdir_flag=_workdir))
