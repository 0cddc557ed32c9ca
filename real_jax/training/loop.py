r"""The resumable trainer: a host loop over jitted scans of a few steps each.

  result = train(cfg, workdir)     # or: python -m real_jax.train --config=... --workdir=...

Between chunks it evaluates held-out pass@1 (at step 0 and every
`eval_every` steps), appends the chunk's records to `workdir/metrics.jsonl`,
writes TensorBoard events (`workdir/tb`), prints a progress line every
`log_every` steps and saves an orbax checkpoint (parameters, optimizer state
with its learning rate, the run's key, the step) every `checkpoint_every`
steps. A chunk ends at the next step that is a multiple of `eval_every` or
`checkpoint_every`, so most chunks share one compiled program.

Started again with the same command, a run continues from its last readable
checkpoint (an unreadable one is skipped with a warning), drops the records
logged after it and logs exactly what an uninterrupted run would have. Each
step's data and sampling keys depend only on the seed and the step, which is
what makes the resumption exact.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
import os
import time

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from real_jax import metric_names
from real_jax.training import base_model
from real_jax.training import config as config_lib
from real_jax.training import metrics as metrics_lib
from real_jax.training import step as step_lib

__all__ = [
    "Checkpoints",
    "RunResult",
    "chunk_ends",
    "train",
]


class Checkpoints:
  """Orbax checkpoints of the training state; unreadable ones are skipped with a warning."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),  # orbax refuses relative paths
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def save(self, step: int, state: dict, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    self.manager.wait_until_finished()

  def restore_latest(self, template: dict, log: Callable[[str], None] = print
                     ) -> tuple[int, dict, dict] | None:
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        return step, restored.state, restored.meta
      except Exception as e:
        logging.warning("checkpoint at step %d is unreadable (%s: %s); trying an earlier one",
                        step, type(e).__name__, str(e).splitlines()[0][:200])
        log(f"WARNING: checkpoint {step} unreadable, falling back to an earlier one")
    return None

  def close(self):
    self.manager.close()


def _to_tree(state: step_lib.TrainState) -> dict:
  tree = {"params": nnx.to_pure_dict(state.params), "opt_state": state.opt_state,
          "rng": jax.random.key_data(state.key), "step": state.step}
  if state.lagged:  # a lagged sampler's parameters are part of the run (no key without one)
    tree["lagged"] = [nnx.to_pure_dict(p) for p in state.lagged]
  return tree


def _from_tree(tree: dict, like: step_lib.TrainState) -> step_lib.TrainState:
  nnx.replace_by_pure_dict(like.params, tree["params"])
  for p, saved in zip(like.lagged, tree.get("lagged", ()), strict=True):
    nnx.replace_by_pure_dict(p, saved)
  return step_lib.TrainState(like.params, tree["opt_state"], jax.random.wrap_key_data(tree["rng"]),
                             jnp.asarray(tree["step"], jnp.int32), like.lagged)


def _truncate_metrics(path: str, last_step: int) -> None:
  """Drops the records logged after the checkpoint a run resumes from."""
  if not os.path.exists(path):
    return
  kept = [r for r in metrics_lib.read_metrics(os.path.dirname(path)) if r["step"] <= last_step]
  metrics_lib.write_jsonl(path, kept, mode="w")


def _tensorboard(path: str):
  try:
    from tensorboardX import SummaryWriter  # noqa: PLC0415
  except ImportError:  # declared as a dependency; tolerated where it is absent (device images)
    logging.warning("tensorboardX is not installed; no TensorBoard events are written")
    return None
  return SummaryWriter(path)


def chunk_ends(start: int, end: int, cfg: ml_collections.ConfigDict) -> list[int]:
  """The steps after `start` (up to `end`) at which a chunk stops."""
  return [t for t in range(start + 1, end + 1)
          if t % cfg.eval_every == 0 or t % cfg.checkpoint_every == 0 or t == end]


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
  config_lib.validate(cfg)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(cfg.to_json_best_effort(indent=1))
  graphdef, params, base_info = base_model.build_base_model(cfg, log=log)
  state = step_lib.init_state(step_lib.make_optimizer(cfg), params, jax.random.key(cfg.seed),
                              cfg.lr, cfg.sampler_lag)
  ckpt = Checkpoints(os.path.join(workdir, "checkpoints"))
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  start = 0
  restored = ckpt.restore_latest(_to_tree(state), log=log)
  if restored is not None:
    start, tree, _ = restored
    state = _from_tree(tree, state)
    log(f"resumed from step {start}")
  _truncate_metrics(metrics_path, start)

  step = step_lib.make_step(cfg, graphdef)
  evaluate = jax.jit(step_lib.make_evaluate(cfg, graphdef))
  run_steps = jax.jit(functools.partial(step_lib.scan_steps, step), static_argnums=2)
  tau = jnp.asarray(cfg.tau, jnp.float32)
  writer = _tensorboard(os.path.join(workdir, "tb"))
  eval_marks = set(metrics_lib.eval_steps(cfg.steps, cfg.eval_every))
  if start == 0:
    base = jax.device_get(evaluate(state.params))
    metrics_lib.write_jsonl(metrics_path, metrics_lib.records(None, 0, {0: base}), mode="w")
    log(f"[{cfg.loss}] step    0/{cfg.steps}  base model held-out pass@1 "
        f"{float(base[metric_names.EVAL_METRIC]):.3f}")
  end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
  last, t, t0, logged = {}, start, time.perf_counter(), start
  for chunk_end in chunk_ends(start, end, cfg):
    state, values = run_steps(state, tau, chunk_end - t)
    evals = ({chunk_end: jax.device_get(evaluate(state.params))} if chunk_end in eval_marks
             else {})
    recs = metrics_lib.records(jax.device_get(values), t + 1, evals)
    metrics_lib.write_jsonl(metrics_path, recs)
    if writer is not None:
      for rec in recs:
        for k, v in rec.items():
          if k != "step" and v is not None:
            writer.add_scalar(k, v, rec["step"])
    if chunk_end % cfg.checkpoint_every == 0 or chunk_end == cfg.steps:
      ckpt.save(chunk_end, _to_tree(state), {"step": chunk_end, "loss": cfg.loss})
    t, last = chunk_end, recs[-1]
    if t - logged >= cfg.log_every or t == end:
      logged = t
      rate = (t - start) / (time.perf_counter() - t0)
      ev = last[metric_names.EVAL_METRIC]
      ev = f"  pass@1 {ev:.3f}" if ev is not None else ""
      log(f"[{cfg.loss}] step {t:4d}/{cfg.steps}  reward {last['reward_mean']:.3f}{ev}  "
          f"entropy {last['entropy']:.3f}  loss {last['loss']:+.4f}  {rate:.2f} steps/s")
  if writer is not None:
    writer.close()
  ckpt.close()
  return RunResult(workdir, end, last, base_info, time.perf_counter() - t0)
