r"""Multi-process runs through JAX's own runtime (`jax.distributed`): start-up and collectives.

Every command that trains takes the same flags (`define_flags`):

- `--coordinator_address=HOST:PORT --num_processes=N --process_id=I` start
  the process explicitly (a GPU cluster without a scheduler, or N local
  processes: `experiments/launch_local_multihost.py`);
- `--distributed` lets `jax.distributed.initialize()` detect the cluster
  (TPU pods, SLURM, Open MPI);
- neither: one process.

On CPU the processes talk through gloo collectives. There is no launcher
protocol of real_jax's own: a process knows only what `jax.distributed` tells
it (`jax.process_index()`, `jax.process_count()`).

Every point that all processes must reach together (a barrier, a broadcast,
a gather, a multi-process orbax save, a sharded training program) runs
inside `collective(name)`. In a multi-process run, a collective that raises
(a lost peer shows up as a closed gloo connection) or outlasts its timeout
ends the process at once with exit code `EXIT_COLLECTIVE` and a message
naming the process and the collective. Ending at once, rather than raising,
is deliberate: a Python exit would wait in JAX's shutdown barrier for the
peer that is gone. The other processes then fail in their own next
collective, or through JAX's heartbeat, so nothing hangs.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import dataclasses
import json
import os
import sys
import threading
import traceback
from typing import Any

import jax
import numpy as np

__all__ = [
    "EXIT_COLLECTIVE",
    "DEFAULT_TIMEOUT_S",
    "Flags",
    "define_flags",
    "initialize",
    "initialize_from_flags",
    "is_lead",
    "lead_print",
    "describe",
    "collective",
    "barrier",
    "broadcast_from_lead",
    "allgather",
]

EXIT_COLLECTIVE = 3
# Long enough for process 0 to build a base model while the others wait at
# the barrier after it; `--collective_timeout` changes it.
DEFAULT_TIMEOUT_S = 1800.0
_HEARTBEAT_S = 60

_timeout_s = DEFAULT_TIMEOUT_S


@dataclasses.dataclass(frozen=True)
class Flags:
  """The absl flag holders of `define_flags`."""
  coordinator_address: Any
  num_processes: Any
  process_id: Any
  distributed: Any
  collective_timeout: Any


def define_flags(flag_values=None) -> Flags:
  """Defines the multi-process flags on `flag_values` (absl's global flags by default)."""
  from absl import flags  # noqa: PLC0415  (only entry points need absl's flags)
  fv = flags.FLAGS if flag_values is None else flag_values
  return Flags(
      coordinator_address=flags.DEFINE_string(
          "coordinator_address", None, "HOST:PORT of process 0's coordinator; with "
          "--num_processes and --process_id starts a multi-process run explicitly.",
          flag_values=fv),
      num_processes=flags.DEFINE_integer(
          "num_processes", None, "Number of processes in the run (with --coordinator_address).",
          flag_values=fv),
      process_id=flags.DEFINE_integer(
          "process_id", None, "This process's index, 0 .. num_processes - 1.", flag_values=fv),
      distributed=flags.DEFINE_bool(
          "distributed", False, "Call jax.distributed.initialize() with the cluster "
          "auto-detected (TPU pod, SLURM, Open MPI).", flag_values=fv),
      collective_timeout=flags.DEFINE_float(
          "collective_timeout", DEFAULT_TIMEOUT_S, "Seconds a process waits at a barrier, "
          "broadcast or save for its peers before it ends the run.", flag_values=fv),
  )


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto_detect: bool = False,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
  """Joins a multi-process run; returns whether one was started.

  With the three explicit arguments the process joins the coordinator at
  `coordinator_address`; with none of them and `auto_detect`, JAX detects
  the cluster; with neither it stays a single process. Call it before
  anything touches a device.

  Raises:
    ValueError: when only some of the three are given, or they are out of range.
  """
  global _timeout_s
  if timeout_s is None or not timeout_s > 0:
    raise ValueError(f"`collective_timeout` must be a positive number of seconds; got {timeout_s}.")
  _timeout_s = float(timeout_s)
  explicit = {"coordinator_address": coordinator_address, "num_processes": num_processes,
              "process_id": process_id}
  given = [k for k, v in explicit.items() if v is not None]
  if given and len(given) < 3:
    missing = [k for k in explicit if k not in given]
    raise ValueError(f"--{', --'.join(given)} given without --{', --'.join(missing)}: an "
                     "explicit multi-process start needs all three.")
  if given:
    if not isinstance(num_processes, int) or num_processes < 1:
      raise ValueError(f"`num_processes` must be a positive integer; got {num_processes!r}.")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
      raise ValueError(f"`process_id` must be in 0..{num_processes - 1}; got {process_id!r}.")
    host, _, port = str(coordinator_address).rpartition(":")
    if not host or not port.isdigit():
      raise ValueError("`coordinator_address` must be HOST:PORT (e.g. 127.0.0.1:12355); got "
                       f"{coordinator_address!r}.")
  elif not auto_detect:
    return False
  if _client_or_none() is not None:  # already initialized
    return True
  # The CPU client needs a collectives backend to reach other processes; GPU
  # and TPU clients ignore this setting.
  if jax.config.jax_cpu_collectives_implementation in (None, "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  where = (f"process {process_id} of {num_processes}" if given else "this process")
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=int(_timeout_s),
                               heartbeat_timeout_seconds=_HEARTBEAT_S)
  except Exception as e:
    hint = ("" if given else " Outside a TPU pod, SLURM or Open MPI job, pass "
            "--coordinator_address, --num_processes and --process_id.")
    raise RuntimeError(f"{where} could not join the multi-process run "
                       f"({type(e).__name__}: {_first_line(e)}).{hint}") from e
  sys.excepthook = _end_on_uncaught
  return True


def _end_on_uncaught(kind, value, trace) -> None:
  """An uncaught exception ends a multi-process run's process at once.

  A normal exit would wait in JAX's shutdown barrier for peers that are
  themselves waiting for this process; ending at once lets the coordination
  service tell them.
  """
  traceback.print_exception(kind, value, trace)
  _end(f"process {jax.process_index()} of {jax.process_count()} stopped on an uncaught "
       f"{kind.__name__}; ending this process.", code=1)


def initialize_from_flags(holders: Flags) -> bool:
  """`initialize` with the values of `define_flags`' flags."""
  return initialize(holders.coordinator_address.value, holders.num_processes.value,
                    holders.process_id.value, auto_detect=holders.distributed.value,
                    timeout_s=holders.collective_timeout.value)


def is_lead() -> bool:
  """Whether this is process 0, the one that writes metrics, summaries and figures."""
  return jax.process_index() == 0


def lead_print(line: str) -> None:
  """Prints `line` (flushed) on process 0 only: the commands' progress lines."""
  if is_lead():
    print(line, flush=True)


def describe() -> str:
  """A line for the logs: processes, devices, platform."""
  return (f"{jax.process_count()} process(es), {jax.device_count()} device(s) "
          f"({jax.local_device_count()} local): {jax.devices()[0].device_kind}")


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else ""


def _end(message: str, code: int = EXIT_COLLECTIVE) -> None:
  sys.stdout.flush()
  sys.stderr.write(f"real_jax.distributed: ERROR: {message}\n")
  sys.stderr.flush()
  os._exit(code)


@contextlib.contextmanager
def collective(name: str, *, timeout_s: float | None | bool = True) -> Iterator[None]:
  """A block every process must reach in the same order; guarded in multi-process runs.

  `timeout_s`: seconds before the process gives up on its peers (`True`: the
  run's `--collective_timeout`; `None`: no limit, for training programs whose
  length is the user's business). A single process runs the block as it is.
  """
  if jax.process_count() == 1:
    yield
    return
  limit = _timeout_s if timeout_s is True else timeout_s
  where = f"process {jax.process_index()} of {jax.process_count()}"
  finished = threading.Event()

  def watchdog():
    if not finished.wait(limit):
      _end(f"{where}: collective {name!r} did not finish within {limit:.0f}s (a peer lost, "
           "stuck or out of step); ending this process.")

  if limit is not None:
    threading.Thread(target=watchdog, name=f"watchdog {name}", daemon=True).start()
  try:
    yield
  except Exception as e:
    traceback.print_exc()
    _end(f"{where}: collective {name!r} failed ({type(e).__name__}: {_first_line(e)}); "
         "a peer was probably lost. Ending this process.")
  finally:
    finished.set()


def _client_or_none():
  from jax._src import distributed as jax_distributed  # noqa: PLC0415
  return getattr(jax_distributed.global_state, "client", None)


def _client():
  client = _client_or_none()
  if client is None:
    raise RuntimeError("several processes but no jax.distributed client: call "
                       "real_jax.distributed.initialize first.")
  return client


_calls: dict[str, int] = {}


def _key(name: str) -> str:
  """A key unique to this call of `name`: every process makes the same calls in the same order."""
  _calls[name] = _calls.get(name, 0) + 1
  return f"real_jax/{name}/{_calls[name]}"


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (a no-op for one process).

  The barrier is the coordination service's, not a device collective: gloo
  gives up on a peer after 30 s, while a barrier may wait for process 0 to
  build a base model.
  """
  if jax.process_count() == 1:
    return
  with collective(f"barrier {name}"):
    _client().wait_at_barrier(_key(f"barrier {name}"), int(_timeout_s * 1000))


def broadcast_from_lead(value: Any, name: str) -> Any:
  """Process 0's `value` (anything JSON can carry), on every process.

  It travels through the coordination service's key-value store, so the
  others may wait for process 0 as long as the collective timeout allows.
  """
  if jax.process_count() == 1:
    return value
  with collective(f"broadcast {name}"):
    key = _key(f"broadcast {name}")
    if is_lead():
      _client().key_value_set(key, json.dumps(value))
      return value
    return json.loads(_client().blocking_key_value_get(key, int(_timeout_s * 1000)))


def allgather(tree, name: str):
  """Every leaf of `tree` (global arrays spanning processes) as a NumPy array on every process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    with collective(f"gather {name}"):
      tree = multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
