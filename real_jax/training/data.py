"""The one data stream: training prompts from a seeded JAX stream, a fixed held-out set.

Both drivers (the scanned run and the resumable host loop) call these, so a
config and a seed train on the same prompts everywhere. Step `t` of a run with
key `key(seed)` draws its prompts from `fold_in(key, t)`; nothing else about
the run (loss, learning rate, tau, where it was resumed) changes them, so runs
that share a seed are paired across losses: same base model, same prompts, same
sampling keys.

The held-out sets are drawn once from `eval_seed` and are the same for every
run of a config. Training prompts come from the task's train split and
held-out prompts from its held-out split, which a hash of the problem text
separates, so the two never overlap (`real_jax.tasks.ArithmeticTask.is_held_out`).
The held-out split has two disjoint halves, `validation` (for choosing
hyperparameters) and `test` (for reporting), again by the hash.
"""

from __future__ import annotations

import functools

import jax
import ml_collections

from real_jax import tasks as tasks_lib

__all__ = [
    "make_task",
    "check_task",
    "step_keys",
    "train_batch",
    "eval_set",
]


def make_task(cfg: ml_collections.ConfigDict) -> tasks_lib.Task:
  """The config's task (`cfg.task.name` with `cfg.task.kwargs`), for the RL step and the warm start."""
  return tasks_lib.get_task(cfg.task.name, **cfg.task.kwargs.to_dict())


def check_task(task: tasks_lib.Task) -> None:
  if not isinstance(task, tasks_lib.ArithmeticTask):
    raise ValueError(f"the JAX trainer needs a task with array forms (jax_problems, "
                     f"jax_rewards); {task.name} has none.")


def step_keys(run_key: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(data, sampling, minibatch order)` keys of step `step` (1-based) of a run."""
  k_data, k_sample, k_order = jax.random.split(jax.random.fold_in(run_key, step), 3)
  return k_data, k_sample, k_order


@functools.cache
def _problems(task: tasks_lib.ArithmeticTask):
  """`task.jax_problems` as one compiled program (`n` and `split` static).

  Called eagerly (the held-out sets, the tests) it would run as some forty
  separate operations, 4.6 s of a fresh process on a 2-core CPU; inside the
  training step it is inlined. Integer arithmetic, so the same problems.
  """
  return jax.jit(task.jax_problems, static_argnums=(1, 2))


def train_batch(task: tasks_lib.ArithmeticTask, run_key: jax.Array, step, n: int):
  """`(prompts [n, P], targets [n, R], target_len [n])` of step `step`, train split."""
  return _problems(task)(step_keys(run_key, step)[0], n, "train")


def eval_set(task: tasks_lib.ArithmeticTask, eval_seed: int, n: int, split: str = "eval"):
  """Held-out prompts `(prompts, targets, target_len)` of `split` (eval, validation or test)."""
  if split == "train":
    raise ValueError("`split` of a held-out set must be 'eval', 'validation' or 'test'.")
  return _problems(task)(jax.random.key(eval_seed), n, split)
