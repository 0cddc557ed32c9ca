"""Synthetic reasoning tasks with strict verifiers."""

from real_jax.tasks._base import BOS
from real_jax.tasks._base import EOS
from real_jax.tasks._base import PAD
from real_jax.tasks._base import Addition
from real_jax.tasks._base import ArithmeticTask
from real_jax.tasks._base import Batch
from real_jax.tasks._base import CharTokenizer
from real_jax.tasks._base import Multiplication
from real_jax.tasks._base import Task
from real_jax.tasks._chain import ChainAddition

__all__ = [
    "Addition",
    "ArithmeticTask",
    "BOS",
    "Batch",
    "ChainAddition",
    "CharTokenizer",
    "EOS",
    "Multiplication",
    "PAD",
    "TASKS",
    "Task",
    "get_task",
]

TASKS = {"addition": Addition, "multiplication": Multiplication, "chain_addition": ChainAddition}


def get_task(name: str, **kwargs) -> Task:
  """The task `name` of `TASKS`, built with `kwargs`."""
  try:
    return TASKS[name](**kwargs)
  except KeyError:
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}.") from None
