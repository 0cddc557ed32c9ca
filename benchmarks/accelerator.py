r"""The accelerator report: every figure a GPU or TPU user needs, from one command.

  python benchmarks/accelerator.py --out DIR [--platform cpu|gpu|tpu] [--tiny]
  make accel-report                     # on whatever JAX sees, into runs/accelerator

Writes `DIR/report.json` and a readable `DIR/report.md` with, measured in one run
on one device:

1. the device: platform, kind, count, memory, JAX and jaxlib versions;
2. its limits: memory bandwidth (a jitted sum over a large array) and the
   float32 and bfloat16 matmul rates;
3. the derivation check there: `real_jax.grad_analysis.run_sweep` over every
   objective and sign, its largest relative error against the sweep's
   tolerance, cold (first, compiling) and warm (second) time; float64 where
   the platform has it (a TPU has not, and the report says so);
4. the losses, forward plus gradient, at a small and an LLM-sized shape, with
   float32 and bfloat16 inputs and bool and float masks: time, share of the
   measured bandwidth, and the ratio against the official algorithm in
   PyTorch on the same device where PyTorch sees it;
5. training through the scan driver: steps per second for 1, 8, 64 and 256
   vmapped seeds (and the seed-steps per second they amount to) with peak
   device memory, for the toy policy and a larger one (512 wide, 8 layers);
6. the update step's FLOP/s against the matmul rate, and sampler tokens per
   second with and without the KV cache.

`--tiny` shrinks every size so that the whole report runs on a CPU in under a
minute, and checks two objectives (REAL and GRPO) instead of every one;
`make test` runs it and checks the sections and the gradient errors (never
the timings), and the gradient check's own test covers every objective. Nothing here needs Tunix, ml_collections' extras or
tensorboardX beyond what the core package imports.
"""

from __future__ import annotations

import json
import os
import platform as platform_lib
import time

from absl import app
from absl import flags
from absl import logging

_OUT = flags.DEFINE_string("out", None, "Folder for report.json and report.md.")
_PLATFORM = flags.DEFINE_enum("platform", None, ["cpu", "gpu", "tpu"],
                              "Device platform (default: JAX's default device).")
_TINY = flags.DEFINE_bool("tiny", False, "Small sizes everywhere (a CPU smoke run).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median reported).")
flags.mark_flags_as_required(["out"])

SECTIONS = ("device", "limits", "grad_check", "losses", "training", "update_and_sampling")


def _sizes(tiny: bool) -> dict:
  if tiny:
    return {"bandwidth_mib": 16, "matmul_n": 256, "cases": 256, "chunk": 64, "grad_passes": 1,
            "objectives": ("real", "grpo"),
            "loss_shapes": ("2x4x16",), "losses": ("real", "grpo"),
            "seeds": (1, 2), "scan_steps": 2,
            "policies": {"toy (16 wide, 1 layer)": (16, 1, 2)},
            "update_policy": (16, 1, 2), "sample_sequences": 16, "sample_len": 8}
  return {"bandwidth_mib": 1024, "matmul_n": 4096, "cases": 100_000, "chunk": 2048, "grad_passes": 2,
          "objectives": None,
          "loss_shapes": ("64x8x1024", "128x8x8192"), "losses": None,
          "seeds": (1, 8, 64, 256), "scan_steps": 10,
          "policies": {"toy (64 wide, 2 layers)": (64, 2, 4),
                       "larger (512 wide, 8 layers)": (512, 8, 8)},
          "update_policy": (512, 8, 8), "sample_sequences": 128, "sample_len": 64}


def _device(platform):
  import jax  # noqa: PLC0415
  try:
    return jax.devices(platform)[0] if platform else jax.devices()[0]
  except RuntimeError as e:
    raise SystemExit(f"--platform={platform}: JAX sees no such device ({e}).") from None


def _memory(device) -> dict:
  stats = getattr(device, "memory_stats", lambda: None)()
  if not stats:
    return {"bytes_limit": None, "peak_bytes_in_use": None}
  return {"bytes_limit": stats.get("bytes_limit"),
          "peak_bytes_in_use": stats.get("peak_bytes_in_use")}


def device_section(device) -> dict:
  import jax  # noqa: PLC0415
  import jaxlib  # noqa: PLC0415
  return {"platform": device.platform, "device_kind": device.device_kind,
          "device_count": len(jax.devices(device.platform)),
          "memory_bytes": _memory(device)["bytes_limit"], "jax": jax.__version__,
          "jaxlib": jaxlib.__version__, "python": platform_lib.python_version()}


def limits_section(device, sizes, repeats) -> dict:
  from _common import matmul_rate  # noqa: PLC0415
  from _common import memory_bandwidth  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  return {"bandwidth_GBps": memory_bandwidth(repeats, sizes["bandwidth_mib"], device),
          "matmul_float32_TFLOPs": matmul_rate(repeats, sizes["matmul_n"], jnp.float32,
                                               device) / 1e12,
          "matmul_bfloat16_TFLOPs": matmul_rate(repeats, sizes["matmul_n"], jnp.bfloat16,
                                                device) / 1e12,
          "matmul_n": sizes["matmul_n"], "bandwidth_MiB": sizes["bandwidth_mib"]}


def grad_check_section(device, sizes) -> dict:
  import jax  # noqa: PLC0415

  from real_jax import grad_analysis as ga  # noqa: PLC0415
  dtypes = ("float32",) if device.platform == "tpu" else ("float32", "float64")
  out = {"dtypes": list(dtypes), "tolerance": {d: ga.TOLERANCE[d] for d in dtypes},
         "float64": ("not supported on TPU: float32 only" if device.platform == "tpu"
                     else "checked")}
  times = []
  with jax.default_device(device):
    # Cold (compiling), then warm (the same programs again); --tiny measures
    # nothing worth a second pass.
    for _ in range(sizes["grad_passes"]):
      start = time.perf_counter()
      result = ga.run_sweep(sizes["cases"], dtypes, chunk=sizes["chunk"],
                            objectives=sizes["objectives"] or ga.OBJECTIVES,
                            progress=lambda _: None)
      times.append(time.perf_counter() - start)
  rows = []
  for name, by_sign in result.table.items():
    for sign, by_dtype in by_sign.items():
      for dtype, stats in by_dtype.items():
        rows.append({"objective": name, "sign": sign, "dtype": dtype,
                     "max_rel_err": stats["max_rel_err"], "passed": stats["passed"]})
  warm_s = times[1] if len(times) > 1 else None
  out.update(cold_s=times[0], warm_s=warm_s, cases_per_dtype=sizes["cases"], rows=rows,
             passed=all(r["passed"] for r in rows))
  return out


def _torch_device(platform: str):
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    return None, None
  if platform == "gpu":
    return (torch, "cuda") if torch.cuda.is_available() else (torch, None)
  return (torch, "cpu") if platform == "cpu" else (torch, None)


def losses_section(device, sizes, repeats, bandwidth) -> dict:
  from _common import TORCH_TIMERS  # noqa: PLC0415
  from _common import make_batch  # noqa: PLC0415
  from _common import median_time  # noqa: PLC0415
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  from real_jax import losses  # noqa: PLC0415
  torch, torch_dev = _torch_device(device.platform)
  names = sizes["losses"] or tuple(losses.LOSSES)
  rows = []
  for shape in sizes["loss_shapes"]:
    B, G, T = (int(v) for v in shape.split("x"))
    batch = make_batch(B, G, T)
    logp, old, mask, rewards = batch
    t_torch = {name: timer(torch, batch, torch_dev, repeats)
               for name, timer in TORCH_TIMERS.items() if torch_dev and name in names}
    for dtype in ("float32", "bfloat16"):
      for mask_kind in ("bool", "float"):
        dt = jnp.dtype(dtype)
        m = mask if mask_kind == "bool" else mask.astype(dt)
        args = [jax.device_put(jnp.asarray(a), device)
                for a in (logp.astype(dt), old.astype(dt), m, rewards)]
        read = sum(a.nbytes for a in args[:3])
        for name in names:
          fn = losses.get(name)
          step = jax.jit(jax.value_and_grad(lambda lp, o, mk, r, fn=fn: fn(lp, o, mk, r)[0]))
          seconds = median_time(lambda step=step, args=args: jax.block_until_ready(step(*args)),
                                repeats)
          row = {"shape": shape, "loss": name, "dtype": dtype, "mask": mask_kind,
                 "seconds": seconds, "effective_GBps": read / seconds / 1e9,
                 "fraction_of_bandwidth": read / seconds / 1e9 / bandwidth}
          if dtype == "float32" and mask_kind == "bool" and name in t_torch:
            row.update(torch_s=t_torch[name], torch_over_jax=t_torch[name] / seconds)
          rows.append(row)
  return {"rows": rows, "torch": None if torch is None else torch.__version__,
          "torch_device": torch_dev}


def _policy_config(width, depth, heads):
  from real_jax.training import config  # noqa: PLC0415
  cfg = config.get_config()
  cfg.model.update(width=width, depth=depth, heads=heads)
  return cfg


def training_section(device, sizes) -> dict:
  from flax import nnx  # noqa: PLC0415
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  from real_jax.training import base_model  # noqa: PLC0415
  from real_jax.training import data  # noqa: PLC0415
  from real_jax.training import scan  # noqa: PLC0415
  rows = []
  for label, (width, depth, heads) in sizes["policies"].items():
    cfg = _policy_config(width, depth, heads)
    cfg.steps = cfg.eval_every = sizes["scan_steps"]
    cfg.eval_size = 16
    task = data.make_task(cfg)
    # A random policy: the throughput of a step does not depend on what it knows.
    graphdef, params = nnx.split(base_model.make_policy(cfg, task, 0))
    params = jax.device_put(params, device)
    train = scan.make_train(cfg, graphdef)
    one_seed = None
    for seeds in sizes["seeds"]:
      keys = jax.device_put(jax.vmap(jax.random.key)(jnp.arange(seeds)), device)
      taus = jnp.full((seeds,), cfg.tau, jnp.float32)
      lrs = jnp.full((seeds,), cfg.lr, jnp.float32)
      run = jax.jit(jax.vmap(train, in_axes=(None, 0, 0, 0)))
      try:
        start = time.perf_counter()
        jax.block_until_ready(run(params, keys, taus, lrs))  # compiles
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(run(params, keys, taus, lrs))
        seconds = time.perf_counter() - start
      except Exception as e:
        rows.append({"policy": label, "seeds": seeds, "error": f"{type(e).__name__}: "
                     f"{str(e).splitlines()[0][:200]}"})
        continue
      one_seed = seconds if seeds == 1 else one_seed
      rows.append({"policy": label, "seeds": seeds, "steps": cfg.steps,
                   "seconds": seconds, "compile_s": compile_s,
                   "steps_per_s": cfg.steps / seconds,
                   "seed_steps_per_s": seeds * cfg.steps / seconds,
                   "over_one_seed": seconds / one_seed if one_seed else None,
                   "peak_bytes": _memory(device)["peak_bytes_in_use"]})
  return {"rows": rows, "note": "each run includes its evaluations (step 0 and the last)"}


def update_and_sampling_section(device, sizes, repeats, matmul_flops) -> dict:
  from _common import measure_update_and_sampling  # noqa: PLC0415
  width, depth, heads = sizes["update_policy"]
  out = measure_update_and_sampling(width, depth, heads, sequences=sizes["sample_sequences"],
                                    response=sizes["sample_len"], repeats=repeats,
                                    device=device)
  flops = out.pop("update_flops")
  out.update(policy=f"{width} wide, {depth} layers", sequences=sizes["sample_sequences"],
             response_len=sizes["sample_len"], update_TFLOPs=flops / out["update_s"] / 1e12,
             update_fraction_of_matmul=flops / out["update_s"] / matmul_flops if flops else None)
  return out


def _targets(report: dict) -> list[str]:
  """The issue's targets, read from the figures (a GPU's; stated, never asserted)."""
  lines = []
  llm = report["losses"]["rows"]
  real = [r for r in llm if r["loss"] == "real" and r["dtype"] == "float32"
          and r["mask"] == "bool" and r["shape"] == report["sizes"]["loss_shapes"][-1]]
  if real:
    r = real[0]
    lines.append(f"REAL fwd+grad at {r['shape']}: {100 * r['fraction_of_bandwidth']:.0f}% of the "
                 f"measured bandwidth (target on a GPU: >= 50%)"
                 + (f"; {r['torch_over_jax']:.1f}x the official PyTorch algorithm on "
                    f"{report['losses']['torch_device']} (target: >= 3x)"
                    if "torch_over_jax" in r else "; PyTorch does not see this device"))
  seeds = [r for r in report["training"]["rows"] if "over_one_seed" in r and r["over_one_seed"]]
  if seeds:
    r = max(seeds, key=lambda r: (r["policy"].startswith("toy"), r["seeds"]))
    lines.append(f"{r['seeds']} vmapped seeds of the {r['policy']} policy: {r['over_one_seed']:.1f}x "
                 f"the time of one seed (target for 256 seeds: <= 10x)")
  if report["device"]["platform"] == "cpu":
    lines.append("On a CPU these targets are not expected: a 2-core CPU's select-heavy masked "
                 "reductions reach a fraction of its bandwidth, and one toy run already "
                 "occupies its cores, so vmapped seeds scale about linearly.")
  return lines


def markdown(report: dict) -> str:
  d, lim, gc = report["device"], report["limits"], report["grad_check"]
  warm = f", warm {gc['warm_s']:.1f} s" if gc["warm_s"] is not None else ""
  out = [f"# Accelerator report: {d['device_kind']} ({d['platform']})", "",
         f"{d['device_count']} device(s), memory {d['memory_bytes'] or 'not reported'} bytes; "
         f"JAX {d['jax']}, jaxlib {d['jaxlib']}, Python {d['python']}"
         + (" (--tiny sizes)" if report["tiny"] else ""), "",
         "## Limits, measured in this run", "",
         f"- memory bandwidth: {lim['bandwidth_GBps']:.1f} GB/s (sum over {lim['bandwidth_MiB']} MiB)",
         f"- matmul {lim['matmul_n']}^3: float32 {lim['matmul_float32_TFLOPs']:.3f} TFLOP/s, "
         f"bfloat16 {lim['matmul_bfloat16_TFLOPs']:.3f} TFLOP/s", "",
         "## Derivation check (autodiff against the closed forms)", "",
         f"{gc['cases_per_dtype']:,} random groups per dtype; float64: {gc['float64']}; "
         f"cold {gc['cold_s']:.1f} s{warm}; {'PASS' if gc['passed'] else 'FAIL'}", "",
         "| objective | sign | dtype | max rel. error | tolerance |", "| --- | --- | --- | --- | --- |"]
  out += [f"| {r['objective']} | {r['sign']} | {r['dtype']} | {r['max_rel_err']:.1e} "
          f"| {gc['tolerance'][r['dtype']]:.0e} |" for r in gc["rows"]]
  out += ["", "## Losses, forward + gradient", "",
          "| shape | loss | inputs | mask | time | % of bandwidth | PyTorch / JAX |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
  out += [f"| {r['shape']} | {r['loss']} | {r['dtype']} | {r['mask']} | {1e3 * r['seconds']:.2f} ms "
          f"| {100 * r['fraction_of_bandwidth']:.0f}% | "
          f"{r['torch_over_jax']:.1f}x |" if "torch_over_jax" in r else
          f"| {r['shape']} | {r['loss']} | {r['dtype']} | {r['mask']} | {1e3 * r['seconds']:.2f} ms "
          f"| {100 * r['fraction_of_bandwidth']:.0f}% | |" for r in report["losses"]["rows"]]
  out += ["", "## Training through the scan driver", "",
          "| policy | seeds | steps/s | seed-steps/s | x one seed | peak memory | compile |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in report["training"]["rows"]:
    if "error" in r:
      out.append(f"| {r['policy']} | {r['seeds']} | {r['error']} | | | | |")
      continue
    ratio = f"{r['over_one_seed']:.1f}x" if r["over_one_seed"] else "-"
    out.append(f"| {r['policy']} | {r['seeds']} | {r['steps_per_s']:.1f} "
               f"| {r['seed_steps_per_s']:.1f} | {ratio} | {r['peak_bytes'] or 'not reported'} "
               f"| {r['compile_s']:.1f} s |")
  u = report["update_and_sampling"]
  frac = (f"{100 * u['update_fraction_of_matmul']:.0f}% of the float32 matmul rate"
          if u["update_fraction_of_matmul"] else "no FLOP count from this backend")
  out += ["", "## Update step and sampling", "",
          f"Policy {u['policy']}: update step {1e3 * u['update_s']:.1f} ms on "
          f"{u['update_batch']}, {u['update_TFLOPs']:.3f} TFLOP/s = {frac}; sampling "
          f"{u['sequences']} sequences x {u['response_len']} tokens: "
          f"{u['cached_tokens_per_s']:,.0f} tokens/s with the KV cache, "
          f"{u['recompute_tokens_per_s']:,.0f} without ({u['cache_speedup']:.1f}x).", "",
          "## Targets", ""]
  out += [f"- {line}" for line in _targets(report)]
  return "\n".join(out) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  platform = _PLATFORM.value
  import jax  # noqa: PLC0415
  if platform != "tpu":
    jax.config.update("jax_enable_x64", True)  # float64 for the derivation check
  device = _device(platform)
  sizes = _sizes(_TINY.value)
  repeats = 1 if _TINY.value else _REPEATS.value
  os.makedirs(_OUT.value, exist_ok=True)
  report = {"tiny": _TINY.value, "sizes": {k: v for k, v in sizes.items() if k != "policies"}}
  timeline = []

  def section(name, fn):
    start = time.perf_counter()
    print(f"[{len(timeline) + 1}/{len(SECTIONS)}] {name} ...", flush=True)
    report[name] = fn()
    timeline.append((name, time.perf_counter() - start))
    # A run stopped part-way (a time limit on a lent machine) keeps what it measured.
    with open(os.path.join(_OUT.value, "report.partial.json"), "w") as f:
      json.dump(report, f, indent=1)

  section("device", lambda: device_section(device))
  section("limits", lambda: limits_section(device, sizes, repeats))
  section("grad_check", lambda: grad_check_section(device, sizes))
  section("losses", lambda: losses_section(device, sizes, repeats,
                                           report["limits"]["bandwidth_GBps"]))
  with jax.default_device(device):
    section("training", lambda: training_section(device, sizes))
    section("update_and_sampling", lambda: update_and_sampling_section(
        device, sizes, repeats, report["limits"]["matmul_float32_TFLOPs"] * 1e12))
  report["targets"] = _targets(report)
  report["section_seconds"] = dict(timeline)
  with open(os.path.join(_OUT.value, "report.json"), "w") as f:
    json.dump(report, f, indent=1)
  os.remove(os.path.join(_OUT.value, "report.partial.json"))
  text = markdown(report)
  with open(os.path.join(_OUT.value, "report.md"), "w") as f:
    f.write(text)
  print(text)
  print(f"report: {os.path.join(_OUT.value, 'report.json')} and report.md "
        f"({sum(t for _, t in timeline):.0f} s)")


if __name__ == "__main__":
  app.run(main)
