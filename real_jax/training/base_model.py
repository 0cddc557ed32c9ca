"""The supervised base model every RL run of a config starts from.

It is built once per (task, model, base settings) by supervised training on
demonstrations until held-out greedy pass@1 reaches `base.band[0]`, saved with
orbax under `base.dir` (atomically: a half-built model is never picked up) and
reused by every RL run, loss and seed of that config.

In a multi-process run (`real_jax.distributed`) process 0 alone builds and
saves it, every process waits at one barrier, and then each loads it: the
folder must be one that every process can read (a shared file system or a
bucket). The save and the loads are each process's own (orbax with this
process as its only participant), so no orbax barrier can pair up with
another process's different one.
"""

from __future__ import annotations

from collections.abc import Callable
import hashlib
import json
import os
import shutil
import time

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from real_jax import distributed
from real_jax import model as model_lib
from real_jax import sampling
from real_jax import tasks as tasks_lib
from real_jax.training import data

__all__ = [
    "policy_config",
    "graphdef",
    "make_policy",
    "base_model_dir",
    "build_base_model",
]


def policy_config(cfg: ml_collections.ConfigDict, task: tasks_lib.Task,
                  compute_dtype: str | None = None) -> model_lib.PolicyConfig:
  """The policy's architecture for the config's task, computing in `compute_dtype`
  (default: `model.compute_dtype`)."""
  m = cfg.model
  compute_dtype = compute_dtype or m.get("compute_dtype", "float32")
  return model_lib.PolicyConfig(
      vocab_size=task.tokenizer.vocab_size, max_len=task.prompt_len + task.max_response,
      width=m.width, depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio,
      dtype=jnp.bfloat16 if compute_dtype == "bfloat16" else jnp.float32)


def graphdef(cfg: ml_collections.ConfigDict, task: tasks_lib.Task,
             compute_dtype: str | None = None) -> nnx.GraphDef:
  """The policy's graph definition alone, built abstractly (no parameters are initialised)."""
  abstract = nnx.eval_shape(lambda: model_lib.Policy(policy_config(cfg, task, compute_dtype),
                                                     rngs=nnx.Rngs(0)))
  return nnx.split(abstract)[0]


def make_policy(cfg: ml_collections.ConfigDict, task: tasks_lib.Task, seed: int) -> model_lib.Policy:
  policy_cfg = policy_config(cfg, task)
  # Initialised in one compiled program rather than op by op (the same values,
  # bit for bit): a fresh process then spends a fraction of a second here, not
  # three, and the program comes from the persistent compilation cache.
  return nnx.jit(lambda: model_lib.Policy(policy_cfg, rngs=nnx.Rngs(seed)))()


def base_model_dir(cfg: ml_collections.ConfigDict) -> str:
  """`base.dir/<task>-<hash of task, model and base settings>`, absolute (orbax needs it)."""
  spec = json.dumps({"task": cfg.task.to_dict(), "model": cfg.model.to_dict(),
                     "base": {k: v for k, v in cfg.base.to_dict().items() if k != "dir"}},
                    sort_keys=True)
  digest = hashlib.sha256(spec.encode()).hexdigest()[:10]
  return os.path.abspath(os.path.join(cfg.base.dir, f"{cfg.task.name}-{digest}"))


def _pass_at_1(graphdef, params, task, prompts, answers, temperature) -> float:
  rollout = sampling.sample(graphdef, params, jnp.asarray(prompts), jax.random.key(0),
                            max_new=task.max_response, temperature=temperature,
                            **task.special_ids)
  return float(task.rewards(np.asarray(rollout.response), answers).mean())


def _own_checkpointer() -> ocp.StandardCheckpointer:
  """An orbax checkpointer whose only participant is this process."""
  me = jax.process_index()
  return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
      primary_host=me, active_processes={me}))


def _host(params) -> dict:
  """NumPy copies: orbax saves device arrays only with every process taking part."""
  return jax.tree.map(np.asarray, nnx.to_pure_dict(params))


def build_base_model(cfg: ml_collections.ConfigDict, *, log: Callable[[str], None] = print):
  """Returns `(graphdef, params, info)`, loading the saved model when it exists.

  Every process of a multi-process run must call it (it holds a barrier).
  """
  task = data.make_task(cfg)
  path = base_model_dir(cfg)
  graphdef, params = nnx.split(make_policy(cfg, task, cfg.base.seed))
  info_path = os.path.join(path, "info.json")
  if distributed.is_lead() and not os.path.exists(info_path):
    _train_and_save(cfg, task, graphdef, params, path, log)
  distributed.barrier(f"real_jax base model {os.path.basename(path)}")
  if not os.path.exists(info_path):
    raise FileNotFoundError(
        f"process {jax.process_index()} cannot read the base model process 0 saved in {path}: "
        "in a multi-process run `base.dir` must be a folder every process can read (a shared "
        "file system).")
  pure = _own_checkpointer().restore(os.path.join(path, "params"), _host(params))
  nnx.replace_by_pure_dict(params, jax.tree.map(jnp.asarray, pure))
  with open(info_path) as f:
    return graphdef, params, json.load(f)


def _train_and_save(cfg, task, graphdef, params, path, log) -> None:
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
    rng = np.random.default_rng([base.seed, step, 2])  # which solution, where a task has several
    for i, (ids, answer) in enumerate(zip(batch.prompts, batch.answers, strict=True)):
      prompt = task.tokenizer.decode(ids[1:])
      answer_ids = task.tokenizer.encode(task.solution(prompt, answer, rng)) + [tasks_lib.EOS]
      seqs[i, :p_len] = ids
      seqs[i, p_len:p_len + len(answer_ids)] = answer_ids
      mask[i, :len(answer_ids)] = True
    params, opt_state, loss = sft_step(params, opt_state, jnp.asarray(seqs), jnp.asarray(mask))
    if step % base.eval_every == 0:
      pass1 = _pass_at_1(graphdef, params, task, eval_batch.prompts, eval_batch.answers,
                         cfg.eval_temperature)
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
  checkpointer = _own_checkpointer()
  checkpointer.save(os.path.join(tmp, "params"), _host(params))
  checkpointer.wait_until_finished()
  with open(os.path.join(tmp, "info.json"), "w") as f:
    json.dump(info, f)
  os.replace(tmp, path)
