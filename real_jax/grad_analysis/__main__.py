r"""Autodiff gradients of every objective against the paper's closed forms.

  python -m real_jax.grad_analysis --out DIR [--platform cpu|gpu|tpu]
      [--cases N] [--x64/--nox64] [--seed S]

Prints a table (objective x sign x dtype: cases, max abs error, max relative
error, bound holds, shape holds, share of exact zeros) and each objective's
properties (its bound, its shape in s, where it is zero), writes
`DIR/report.json`, `DIR/figure1.png` (GRPO against REAL, the paper's
Figure 1), `DIR/figure_variants.png` (GRAD, BCE, product-style) and
`DIR/figure_atlas.png` (every objective in Figure 1's layout), and exits 1
when any relative error exceeds its tolerance (1e-9 in float64, 1e-4 in
float32, on weights larger than 1e-30).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform as platform_lib
import sys
import time

from absl import app
from absl import flags
from absl import logging

_OUT = flags.DEFINE_string("out", None, "Folder for report.json and the figures.", required=True)
_PLATFORM = flags.DEFINE_enum("platform", "cpu", ["cpu", "gpu", "tpu"], "Where JAX runs the sweep.")
_CASES = flags.DEFINE_integer("cases", 100_000, "Random groups per dtype (>= 1).")
_X64 = flags.DEFINE_bool("x64", True, "Also run the sweep in float64 (enables jax_enable_x64).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random sweep.")
_CHUNK = flags.DEFINE_integer("chunk", 256, "Sweep cases (of 4 groups) per compiled call.")
_OBJECTIVES = flags.DEFINE_list(
    "objectives", None,
    "Objectives to check (any of real_jax.grad_analysis.OBJECTIVES); default: all of them.")
_CACHE = flags.DEFINE_string(
    "compilation_cache", os.path.join(os.path.expanduser("~"), ".cache", "real_jax", "jax"),
    "JAX persistent compilation cache ('' to disable). Compilation is most of a cold "
    "run's time on a small CPU; a warm cache roughly halves it.")


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _keep_freed_memory() -> None:
  """Lets glibc's malloc keep the memory the sweep frees, for the next chunk.

  Every chunk allocates and frees some hundreds of XLA buffers of 0.25 to
  2 MiB. By default glibc hands such blocks back to the kernel (mapped
  above a moving threshold, trimmed from the threads' heaps), and faulting
  their pages in again cost 7 to 10 s of system time in a cold run of about
  60 s on 2 cores; with this it was under 3 s. The process keeps a few
  hundred MiB more. Without glibc (macOS, musl) it does nothing.
  """
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return
  for param, value in ((_M_MMAP_THRESHOLD, 256 << 20), (_M_TRIM_THRESHOLD, 1 << 30),
                       (_M_TOP_PAD, 256 << 20)):
    libc.mallopt(param, value)


def _select_device(platform: str):
  import jax  # noqa: PLC0415  (x64 must be set before any array exists)
  try:
    devices = jax.devices(platform)
  except RuntimeError as e:
    raise SystemExit(
        f"--platform={platform}: JAX sees no {platform.upper()} here "
        f"(available: {', '.join(sorted({d.platform for d in jax.devices()}))}). "
        f"Install the matching jax plugin (e.g. `pip install -U \"jax[cuda12]\"` or "
        f"`\"jax[tpu]\"`) or pick another platform. ({e})") from None
  return devices[0]


def main(argv):
  del argv
  if _CASES.value < 1:
    raise app.UsageError("--cases must be >= 1.")
  _keep_freed_memory()
  from real_jax.grad_analysis import _sweep  # noqa: PLC0415
  objectives = tuple(_OBJECTIVES.value or _sweep.OBJECTIVES)
  unknown = sorted(set(objectives) - set(_sweep.OBJECTIVES))
  if unknown:
    raise app.UsageError(f"--objectives: unknown {unknown}; known: {', '.join(_sweep.OBJECTIVES)}.")
  logging.set_verbosity(logging.WARNING)  # JAX's backend probing is noise here
  import jax  # noqa: PLC0415
  if _X64.value:
    jax.config.update("jax_enable_x64", True)
  if _CACHE.value:
    jax.config.update("jax_compilation_cache_dir", _CACHE.value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  device = _select_device(_PLATFORM.value)
  from real_jax import grad_analysis as ga  # noqa: PLC0415

  os.makedirs(_OUT.value, exist_ok=True)
  dtypes = ("float32", "float64") if _X64.value else ("float32",)
  print(f"real_jax.grad_analysis: JAX {jax.__version__} on {device.platform} "
        f"({device.device_kind}), {_CASES.value:,d} random groups per dtype, "
        f"dtypes {', '.join(dtypes)}", flush=True)
  fig1 = os.path.join(_OUT.value, "figure1.png")
  fig2 = os.path.join(_OUT.value, "figure_variants.png")
  fig3 = os.path.join(_OUT.value, "figure_atlas.png")

  def draw(curves):  # on a thread of the sweep (under its device), while it runs
    ga.plot_figure1(fig1, curves if all(n in curves for n in ga.FIGURE1) else None)
    ga.plot_variants(fig2, curves if all(n in curves for n in ga.VARIANTS) else None)
    ga.plot_atlas(fig3, curves)

  start = time.perf_counter()
  with jax.default_device(device):
    result = ga.run_sweep(_CASES.value, dtypes, seed=_SEED.value, chunk=_CHUNK.value,
                          objectives=objectives, progress=lambda line: print(line, flush=True),
                          on_figure_curves=draw)
  identities = result.identities
  seconds = time.perf_counter() - start

  passed = result.passed
  print()
  print(ga.format_table(result.table, dtypes))
  for name, by_dtype in result.neutral.items():
    print(f"{name:<18} A = 0     " + "  ".join(
        f"[{d}] {int(r['moving']):,d} moving tokens, max rel err {r['max_rel_err']:.1e}"
        for d, r in by_dtype.items()) + ("" if all(r["passed"] for r in by_dtype.values())
                                         else "  FAIL"))
  print()
  print(ga.format_properties(result.properties, dtypes[-1]))
  print()
  print("Largest negative's share of a group's negative gradient mass "
        "(groups with >= 2 negatives, first dtype):")
  for name in [n for n in ga.FIGURE1 if n in result.domination]:
    d = result.domination[name]
    print(f"  {name:<5} mean {d['mean']:.3f}  median {d['median']:.3f}  p90 {d['p90']:.3f}  "
          f"share > 1/2 in {100 * d['above_half']:.1f}% of {d['groups']:,d} groups")
  for name in [n for n in ga.FIGURE1 if n in result.properties]:
    p = result.properties[name]["negative"][dtypes[-1]]
    print(f"  largest negative weight on the [-20, 20] probe grid, {name}: {p['max_weight']:.3e}"
          f" (bound: {p['bound']})")
  print("Identities: " + ", ".join(f"{k} (max rel err {v:.1e})" for k, v in identities.items()))
  print(f"\n{'PASS' if passed else 'FAIL'} in {seconds:.1f}s. Report: "
        f"{os.path.join(_OUT.value, 'report.json')}  Figures: {fig1} {fig2} {fig3}")

  report = {
      "passed": passed,
      "platform": device.platform,
      "device_kind": device.device_kind,
      "jax_version": jax.__version__,
      "python": platform_lib.python_version(),
      "cases_per_dtype": _CASES.value,
      "objectives": list(objectives),
      "seed": _SEED.value,
      "seconds": seconds,
      "tolerance": {k: v for k, v in ga.TOLERANCE.items() if k in dtypes},
      "table": result.table,
      "neutral": result.neutral,
      "properties": result.properties,
      "domination": result.domination,
      "identities": identities,
      "configurations": {n: ga.ADVANTAGE_DEFAULTS[n] for n in objectives
                         if n in ga.ADVANTAGE_DEFAULTS},
      "figures": {"figure1": fig1, "variants": fig2, "atlas": fig3},
  }
  with open(os.path.join(_OUT.value, "report.json"), "w") as f:
    json.dump(report, f, indent=1)
  # The results page's table, made from the JSON as written (a test remakes it).
  with open(os.path.join(_OUT.value, "report.md"), "w") as f:
    with open(os.path.join(_OUT.value, "report.json")) as g:
      f.write(ga.report_markdown(json.load(g)))
  sys.exit(0 if passed else 1)


if __name__ == "__main__":
  app.run(main)
