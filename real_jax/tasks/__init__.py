"""Synthetic reasoning tasks with strict verifiers."""

from real_jax.tasks._base import BOS
from real_jax.tasks._base import EOS
from real_jax.tasks._base import PAD
from real_jax.tasks._base import TASKS
from real_jax.tasks._base import Addition
from real_jax.tasks._base import ArithmeticTask
from real_jax.tasks._base import Batch
from real_jax.tasks._base import CharTokenizer
from real_jax.tasks._base import Multiplication
from real_jax.tasks._base import Task
from real_jax.tasks._base import get_task

__all__ = [
    "Addition",
    "ArithmeticTask",
    "BOS",
    "Batch",
    "CharTokenizer",
    "EOS",
    "Multiplication",
    "PAD",
    "TASKS",
    "Task",
    "get_task",
]
