r"""The sweep runner: one folder per point, finished points skipped, failures survived.

  status = run_grid(cfg, points, workdir)   # or: python -m real_jax.sweep --config=... --workdir=...

A config file's `get_sweep()` returns a list of override dicts (dotted keys
allowed, and a loss's hyperparameters by their bare names), e.g.
`product(loss=["real", "grpo"], seed=[0, 1, 2])` or
`product(loss=["dro"], dro_beta=[0.01, 0.1])`. Points that
differ only in `seed`, `tau` and `lr` form a group and train together,
`points_per_program` at a time, in one vmapped program (`scan.run_points`).
Each point gets `workdir/<name>/` with `overrides.json`, `metrics.jsonl` (the
one schema, step 0 to the last step) and, once finished, `DONE` (its summary
numbers, `metrics.summarise_run`), written as soon as its program returns. A
program that raises marks its points `FAILED` (with the traceback) and the
sweep goes on. Started again, the runner trains only the points without
`DONE`: every program has the same width, so a point's numbers do not depend
on which others share its program, and an interrupted sweep ends with the
same numbers, bit for bit, as an uninterrupted one.

In a multi-process run (`real_jax.distributed`) every process runs every
group over a mesh of all devices; process 0 decides which groups are done
and tells the others, and only process 0 writes files.

The summary table and figures of a finished sweep are written by
`real_jax.reporting.sweep.summarise`, a layer above the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import importlib.util
import itertools
import json
import os
import re
import time
import traceback

import ml_collections

from real_jax import distributed
from real_jax.training import config as config_lib
from real_jax.training import metrics as metrics_lib
from real_jax.training import scan

__all__ = [
    "VECTORISED",
    "load_config_module",
    "load_sweep",
    "run_config_sweep",
    "status_line",
    "product",
    "point_name",
    "done_marker",
    "apply_overrides",
    "run_grid",
    "rerun_check",
]

VECTORISED = ("seed", "tau", "lr")  # axes trained together in one program


def load_config_module(path: str):
  spec = importlib.util.spec_from_file_location("sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(config_string: str) -> list[dict]:
  """The points of `path[:arg]`'s `get_sweep([arg])`, as config_flags passes `arg` to `get_config`."""
  path, _, arg = config_string.partition(":")
  module = load_config_module(path)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"--config: {path} defines no get_sweep().")
  return module.get_sweep(arg) if arg else module.get_sweep()


def run_config_sweep(cfg: ml_collections.ConfigDict, config_string: str, workdir: str, *,
                     log: Callable[[str], None] = print, mesh=None) -> tuple[list[dict], dict]:
  """Loads `config_string`'s points (`load_sweep`) and runs them; returns `(points, status)`.

  Raises:
    ValueError: when the config file defines no `get_sweep()`.
  """
  points = load_sweep(config_string)
  for p in points:  # a typo in any point fails before anything trains
    config_lib.validate(apply_overrides(cfg, p))
  log(f"{len(points)} points from {config_string} into {workdir}; {distributed.describe()}, "
      f"mesh {dict(mesh.shape) if mesh else 'none'}")
  return points, run_grid(cfg, points, workdir, log=log, mesh=mesh)


def status_line(status: dict, seconds: float) -> str:
  return (f"{len(status['done'])} run, {len(status['skipped'])} skipped (done before), "
          f"{len(status['failed'])} failed, in {seconds:.0f}s.")


def product(**axes) -> list[dict]:
  """`product(loss=["real", "grpo"], seed=[0, 1])` -> every combination, as override dicts."""
  names = list(axes)
  return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def point_name(overrides: dict) -> str:
  text = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
  return re.sub(r"[^A-Za-z0-9_.,=-]", "_", text)


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
  """`cfg` with a point's overrides: dotted keys, and a loss's hyperparameters by bare name.

  `dro_beta=0.1` sets `loss_kwargs.dro_beta` when the point's loss (its own
  `loss` override, else the config's) takes `dro_beta` and the config has no
  top-level field of that name; a registered loss's own hyperparameters are
  added to `loss_kwargs` the same way.
  """
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    for key, value in sorted(overrides.items(), key=lambda kv: kv[0] != "loss"):  # loss first
      node = cfg
      *parents, leaf = key.split(".")
      takes = "loss_kwargs" in cfg and leaf in config_lib.settable(cfg.loss)
      if not parents and leaf not in cfg and takes:
        parents = ["loss_kwargs"]
      for p in parents:
        node = node[p]
      if leaf not in node and not (parents == ["loss_kwargs"] and takes):
        hint = (f"; {cfg.loss!r} takes {', '.join(config_lib.settable(cfg.loss))}"
                if "loss_kwargs" in cfg else "")
        raise ValueError(f"sweep override {key!r}: the config has no such field{hint}.")
      node[leaf] = value
  return cfg


def _groups(points: list[dict]) -> dict[str, list[dict]]:
  groups: dict = {}
  for p in points:
    rest = {k: v for k, v in p.items() if k not in VECTORISED}
    groups.setdefault(json.dumps(rest, sort_keys=True), []).append(p)
  return groups


def done_marker(workdir: str, overrides: dict) -> str:
  """The file whose presence says the point `overrides` of the sweep in `workdir` finished."""
  return os.path.join(workdir, point_name(overrides), "DONE")


def run_grid(cfg: ml_collections.ConfigDict, points: list[dict], workdir: str, *,
              log: Callable[[str], None] = print, run_group: Callable | None = None,
              mesh=None) -> dict:
  """Trains the points not yet done; returns `{"done": [...], "failed": [...], "skipped": [...]}`.

  `run_group(group_cfg, members) -> [run metrics per point]` trains up to
  `points_per_program` points of one group (default: `scan.run_points` over
  `mesh`); tests pass a stand-in.
  """
  run_group = run_group or functools.partial(_run_group, log=log, mesh=mesh)
  lead = distributed.is_lead()
  if lead:
    os.makedirs(workdir, exist_ok=True)
  groups = _groups(points)
  # Process 0's view of the folder decides for every process, so that all
  # of them run the same groups in the same order.
  finished = distributed.broadcast_from_lead(
      [[os.path.exists(done_marker(workdir, p)) for p in members]
       for members in groups.values()], "finished sweep points")
  status = {"done": [], "failed": [], "skipped": []}
  for n, ((key, members), done) in enumerate(zip(groups.items(), finished, strict=True), 1):
    missing = [p for p, d in zip(members, done, strict=True) if not d]
    status["skipped"] += [p for p, d in zip(members, done, strict=True) if d]
    if not missing:
      log(f"[{n}/{len(groups)}] {key}: all {len(members)} points done, skipped")
      continue
    group_cfg = apply_overrides(cfg, json.loads(key))
    width = group_cfg.points_per_program
    log(f"[{n}/{len(groups)}] {key}: {len(missing)} point(s) to train, {width} per program"
        + (f" ({len(members) - len(missing)} done before)" if len(missing) < len(members) else ""))
    for first in range(0, len(missing), width):
      part = missing[first:first + width]
      start = time.perf_counter()
      try:
        results = run_group(group_cfg, part)
      except Exception:
        trace = traceback.format_exc()
        log(f"    FAILED: {trace.strip().splitlines()[-1]}")
        if lead:
          for p in part:
            folder = os.path.join(workdir, point_name(p))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "FAILED"), "w") as f:
              f.write(trace)
        status["failed"] += part
        continue
      for p, run in zip(part, results, strict=True):
        if lead:
          _write_point(workdir, p,
                       metrics_lib.run_records(run, group_cfg.steps, group_cfg.eval_every))
        status["done"].append(p)
      log(f"    {first + len(part)}/{len(missing)} done in {time.perf_counter() - start:.1f}s")
  return status


def _run_group(group_cfg: ml_collections.ConfigDict, members: list[dict], log=print,
               mesh=None) -> list[dict]:
  runs, _ = scan.run_points(
      group_cfg, [int(p.get("seed", group_cfg.seed)) for p in members],
      taus=[float(p.get("tau", group_cfg.tau)) for p in members],
      lrs=[float(p.get("lr", group_cfg.lr)) for p in members], mesh=mesh,
      log=lambda line: log("    " + line))
  return [scan.point(runs, i) for i in range(len(members))]


def _write_point(workdir: str, overrides: dict, recs: list[dict]) -> None:
  folder = os.path.join(workdir, point_name(overrides))
  os.makedirs(folder, exist_ok=True)
  failed = os.path.join(folder, "FAILED")
  if os.path.exists(failed):
    os.remove(failed)
  with open(os.path.join(folder, "overrides.json"), "w") as f:
    json.dump(overrides, f)
  metrics_lib.write_jsonl(os.path.join(folder, "metrics.jsonl"), recs, mode="w")
  with open(done_marker(workdir, overrides), "w") as f:  # written last: marks completion
    json.dump(metrics_lib.summarise_run(recs), f)


def rerun_check(cfg: ml_collections.ConfigDict, points: list[dict], workdir: str, n: int, *,
                log: Callable[[str], None] = print, mesh=None) -> dict:
  """Trains `n` finished points of the first group again, in another grouping, and compares.

  The last `n` finished points of the sweep's first group are trained in
  reverse order, in one program padded to the config's width: other slots and
  other neighbours than the sweep gave them. Their records must equal the
  ones the sweep wrote, to the last bit. Returns `{"points", "identical",
  "differing", "seconds"}`.
  """
  key, members = next(iter(_groups(points).items()), (None, []))
  done = [p for p in members if os.path.exists(done_marker(workdir, p))]
  if n < 1 or not done:
    raise ValueError(f"`n` must be >= 1 and the first group must have finished points; got "
                     f"n={n} and {len(done)} finished.")
  chosen = done[-n:][::-1]
  group_cfg = apply_overrides(cfg, json.loads(key))
  start = time.perf_counter()
  results = _run_group(group_cfg, chosen, log=log, mesh=mesh)
  differing = []
  for p, run in zip(chosen, results, strict=True):
    again = metrics_lib.run_records(run, group_cfg.steps, group_cfg.eval_every)
    if again != metrics_lib.read_metrics(os.path.join(workdir, point_name(p))):
      differing.append(p)
  return {"points": chosen, "identical": len(chosen) - len(differing), "differing": differing,
          "seconds": time.perf_counter() - start}

