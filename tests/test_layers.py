"""The package's layers: every import runs downward, and the lower modules load little.

`ALLOWED` is the architecture, written once: for each part of `real_jax`, the
other parts it may import. The test reads every module's imports with `ast`
(function-level imports included) and fails on any import outside that list,
so a lower layer that reaches up (the losses into the trainer, the Tunix
adapter into the sweeps, the trainer into the reports) fails here first.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from real_jax import losses
from real_jax import palette
from real_jax.grad_analysis import _closed_forms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "real_jax")

_FLOOR = {"metric_names", "domination", "distributed", "losses", "tasks", "model"}
_TRAINER = _FLOOR | {"palette", "sampling", "training"}
_ENTRY = _TRAINER | {"reporting"}
# part -> the parts it may import (its own always allowed). The floor imports nothing.
ALLOWED: dict[str, set[str]] = {
    **{part: set() for part in _FLOOR},
    "palette": {"losses"},  # a registered objective's own colour
    "sampling": {"model"},
    "grad_analysis": {"losses", "domination", "palette"},
    "training": _FLOOR | {"sampling"},
    "reporting": _TRAINER,
    # The adapter knows the losses and the tasks, never the trainer or the sweeps.
    "integrations": {"losses", "tasks", "metric_names", "distributed"},
    # The entry points: thin, and none imports another.
    "__init__": set(),
    "train": _ENTRY,
    "train_scan": _ENTRY,
    "sweep": _ENTRY,
    "study": _ENTRY,
}


def _part(path: str) -> str:
  rel = os.path.relpath(path, PACKAGE)
  return rel.split(os.sep)[0].removesuffix(".py")


def _imported_parts(path: str) -> list[tuple[int, str]]:
  """`(line, part)` for every `real_jax.<part>` that the module at `path` imports."""
  tree = ast.parse(open(path).read(), path)
  out = []
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module] if node.module != "real_jax" else [
          f"real_jax.{a.name}" for a in node.names]
    for name in names:
      if name.startswith("real_jax."):
        out.append((node.lineno, name.split(".")[1]))
  return out


def _modules():
  for folder, _, files in os.walk(PACKAGE):
    for f in sorted(files):
      if f.endswith(".py"):
        yield os.path.join(folder, f)


def test_every_part_is_placed():
  parts = {_part(p) for p in _modules()}
  assert parts <= set(ALLOWED), f"parts with no place in ALLOWED: {parts - set(ALLOWED)}"


def test_imports_run_downward():
  bad = []
  for path in _modules():
    part = _part(path)
    if path.endswith(os.path.join("grad_analysis", "__main__.py")):
      allowed = ALLOWED["grad_analysis"]  # the command stays within its package
    else:
      allowed = ALLOWED[part]
    for line, target in _imported_parts(path):
      if target != part and target not in allowed:
        bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports real_jax.{target}")
  assert not bad, "imports that run upward or sideways:\n" + "\n".join(bad)


def test_the_walk_sees_an_upward_import(tmp_path):
  """The checker itself: a planted `from real_jax.training import metrics` is found."""
  planted = tmp_path / "planted.py"
  planted.write_text("def f():\n  from real_jax.training import metrics\n"
                     "import real_jax.reporting.sweep\nfrom real_jax import losses\n")
  assert _imported_parts(str(planted)) == [(3, "reporting"), (4, "losses"), (2, "training")]


# Imported in this order in one fresh interpreter; after each, none of its
# forbidden modules may be loaded (by it, or by anything imported before it).
_HEAVY = ["matplotlib", "orbax", "tunix", "real_jax.training", "real_jax.reporting"]
_LOADS_NOTHING_HEAVY = ["real_jax.metric_names", "real_jax.palette", "real_jax.losses",
                        "real_jax.tasks", "real_jax.model", "real_jax.sampling",
                        "real_jax.grad_analysis", "real_jax.integrations.tunix"]
# Then the rest of the library (commands excluded).
_LIBRARY = [*_LOADS_NOTHING_HEAVY, "real_jax.training", "real_jax.tasks.math",
            "real_jax.integrations", "real_jax.reporting.sweep", "real_jax.reporting.study"]
_ENTRY_POINTS = ["real_jax.train", "real_jax.train_scan", "real_jax.sweep", "real_jax.study",
                 "real_jax.grad_analysis.__main__", "real_jax.integrations.tunix_train"]
_SCRIPT = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
  importlib.import_module(name)
  out[name] = sorted(sys.modules)
print(json.dumps(out))
"""


def _top(modules: list[str]) -> set[str]:
  """`matplotlib`, `orbax`, ... and `real_jax.<part>`: what a list of module names amounts to."""
  return {m if not m.startswith("real_jax.") else ".".join(m.split(".")[:2]) for m in modules
          } | {m.split(".")[0] for m in modules}


@pytest.fixture(scope="session")
def loaded() -> dict[str, list[str]]:
  """Every module loaded after each import of `_LIBRARY`, in one fresh interpreter."""
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, *_LIBRARY],
                        capture_output=True, text=True, timeout=300, cwd="/")
  assert proc.returncode == 0, proc.stderr
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lower_modules_load_neither_plotting_nor_checkpointing_nor_the_trainer(loaded):
  # The modules that declare names import nothing at all, JAX included.
  for name in ("real_jax.metric_names", "real_jax.palette"):
    assert "jax" not in _top(loaded[name]), f"import {name} loaded JAX"
  for name in _LOADS_NOTHING_HEAVY:
    found = [h for h in _HEAVY if h in _top(loaded[name])]
    assert not found, f"import {name} loaded {found}"
  # The trainer checkpoints (orbax) but neither plots nor reports.
  found = [h for h in ("matplotlib", "real_jax.reporting") if h in _top(loaded["real_jax.training"])]
  assert not found, f"import real_jax.training loaded {found}"


def test_the_library_loads_no_optional_engine_and_no_command(loaded):
  """Tunix, math-verify, transformers and torch stay optional; no library module runs a command."""
  everything = loaded[_LIBRARY[-1]]
  engines = sorted(m for m in everything
                   if m.split(".")[0] in ("tunix", "math_verify", "transformers", "torch"))
  assert not engines, engines
  assert not set(everything) & set(_ENTRY_POINTS)


@pytest.mark.parametrize("names", [
    tuple(losses.LOSSES), tuple(_closed_forms.CONFIGURATIONS)], ids=["losses", "configurations"])
def test_one_colour_per_objective(names):
  missing = [n for n in names if palette.color(n) is None]
  assert not missing, f"no colour in real_jax.palette for {missing}"
  colours = list(palette.COLORS.values())
  assert len(set(colours)) == len(colours), "two objectives share a colour"
