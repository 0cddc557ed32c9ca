r"""`make mutants`: plant each listed bug in a copy of the repository, run the tests meant to catch it.

  python tests/mutants.py [--only NAME,...] [--jobs 2] [--out docs]

Each mutant is one exact text replacement in one file of a fresh copy of the
tracked files; its tests then run against that copy (which comes first on
the import path). A mutant is *caught* when they fail, *missed* when they
pass. The results go to `docs/mutants.json` and the table `docs/mutants.md`
(`--render` rewrites the table from the JSON). Run it on a tree whose suite
passes, and again whenever a listed module changes: a replacement that no
longer matches its file is an error (tests/test_mutants.py checks that too).

The list covers the losses, the derivation check, the training step and
its metrics, the data splits, the sampler and the study's statistics. A
mutant is chosen for being a plausible slip that leaves every value finite.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 900  # per mutant; a mutant that hangs its tests counts as caught


@dataclasses.dataclass(frozen=True)
class Mutant:
  name: str
  path: str      # relative to the repository
  old: str       # must occur exactly once in `path`
  new: str
  tests: str     # pytest arguments, split on spaces
  what: str      # the bug, in words


M = Mutant
MUTANTS = (
    # ------------------------------------------------------------- losses --
    M("kl-gradient-stopped", "real_jax/losses/_advantage.py",
      "    loss = loss + beta * kl", "    loss = loss + beta * jax.lax.stop_gradient(kl)",
      "tests/test_losses.py -k kl", "the KL penalty's value without its gradient"),
    M("k3-unclamped", "real_jax/losses/_advantage.py",
      "    return jnp.clip(jnp.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)",
      "    return jnp.exp(log_ratio) - log_ratio - 1.0",
      "tests/test_losses.py -k k3", "k3 without verl's clamp to [-10, 10]"),
    M("gspo-padding-clipped", "real_jax/losses/_clipped.py",
      "  return jnp.where(m, token_loss, jnp.zeros((), dtype)), is_clipped & m",
      "  return jnp.where(m, token_loss, jnp.zeros((), dtype)), is_clipped",
      "tests/test_losses.py -k clip_fraction", "GSPO's padding counted as clipped"),
    M("clip-fraction-per-rollout", "real_jax/losses/_advantage.py",
      "clip_fraction=jnp.sum(n_clipped) / jnp.maximum(jnp.sum(n_tok), 1),",
      "clip_fraction=jnp.mean(n_clipped / jnp.maximum(n_tok, 1)),",
      "tests/test_losses.py -k clip_fraction", "the batch's clip fraction averaged over rollouts"),
    M("dual-clip-ignored", "real_jax/losses/_clipped.py",
      "    token_loss = jnp.where(dual, cap, token_loss)", "    token_loss = token_loss",
      "tests/test_losses.py -k dual", "the dual clip's cap never applied"),
    M("ratio-unclamped", "real_jax/losses/_clipped.py",
      "  ratio = jnp.exp(jnp.clip(log_ratio, -max_log_ratio, max_log_ratio))",
      "  ratio = jnp.exp(log_ratio)",
      "tests/test_losses.py tests/test_grad_analysis.py -k clamp",
      "the importance ratio without its log-ratio clamp"),
    M("std-biased", "real_jax/losses/_common.py",
      "  std = jnp.sqrt(jnp.sum(centered**2) / jnp.maximum(n - 1, 1))",
      "  std = jnp.sqrt(jnp.sum(centered**2) / jnp.maximum(n, 1))",
      "tests/test_losses.py -k Reference", "GRPO's advantage with the biased (ddof=0) std"),
    M("std-eps-dropped", "real_jax/losses/_common.py",
      "    centered = centered / (std + eps)", "    centered = centered / std",
      "tests/test_losses.py -k Reference", "GRPO's advantage without its epsilon"),
    M("whitening-unweighted", "real_jax/losses/_common.py",
      "  w = jnp.where(present, lengths.astype(dtype), zero)\n  total",
      "  w = jnp.where(present, jnp.ones_like(lengths, dtype), zero)\n  total",
      "tests/test_losses.py -k estimators",
      "REINFORCE++'s whitening over rollouts instead of verl's response tokens"),
    M("passk-second-includes-best", "real_jax/losses/_common.py",
      "    r_second = jnp.max(jnp.where(present & ~is_best, r, -jnp.inf))",
      "    r_second = jnp.max(jnp.where(present, r, -jnp.inf))",
      "tests/test_losses.py -k estimators", "pass@k's runner-up taken over the best too"),
    M("dppo-region-sign-swapped", "real_jax/losses/_policy_gradient.py",
      "  return jnp.where(advantages > 0, keep_pos, keep_neg)",
      "  return jnp.where(advantages > 0, keep_neg, keep_pos)",
      "tests/test_losses.py -k dppo", "DPPO's trust region the wrong way round"),
    M("vespo-mean-ratio", "real_jax/losses/_policy_gradient.py",
      "  log_w = jnp.clip(jnp.sum(s, axis=-1), VESPO_MIN_LOG_W, max_log_ratio)",
      "  log_w = jnp.clip(jnp.mean(s, axis=-1), VESPO_MIN_LOG_W, max_log_ratio)",
      "tests/test_losses.py -k vespo", "VESPO's weight on GSPO's mean log-ratio, not the sum"),
    M("covariance-ties-to-last", "real_jax/losses/_covariance.py",
      "    index = jnp.argmax(flat_key)[None]",
      "    index = (flat_key.shape[0] - 1 - jnp.argmax(flat_key[::-1]))[None]",
      "tests/test_losses.py -k penalties_act", "the covariance selection's ties broken the other way"),
    M("delta-ignored-for-negatives", "real_jax/losses/_clipped.py",
      "  unclipped = -a * (ratio if delta is None else jnp.minimum(ratio, delta))",
      "  unclipped = -a * (ratio if delta is None else jnp.where(a > 0, jnp.minimum(ratio, delta), ratio))",
      "tests/test_losses.py -k two_sided", "the two-sided clip left off the negatives"),
    M("real-anchor-dropped", "real_jax/losses/_label.py",
      "  return jax.nn.logsumexp(jnp.concatenate([z, jnp.zeros((1,), z.dtype)]))",
      "  return jax.nn.logsumexp(z)",
      "tests/test_losses.py -k Reference", "REAL's anchor logit at 0 left out"),
    M("label-padding-unmasked", "real_jax/losses/_label.py",
      "  return jnp.where(where, values, -jnp.inf)", "  return values",
      "tests/test_losses.py -k Invariances", "absent rollouts inside REAL's logsumexp"),
    # ---------------------------------------------------- derivation check --
    M("tolerance-loosened", "real_jax/grad_analysis/_properties.py",
      'TOLERANCE = {"float32": 1e-4, "float64": 1e-9}',
      'TOLERANCE = {"float32": 1.0, "float64": 1e-9}',
      "tests/test_grad_analysis.py -k pinned", "float32's tolerance raised to 1"),
    M("edge-band-widened", "real_jax/grad_analysis/_closed_forms.py",
      'EDGE_BAND = {"float32": 1e-5, "float64": 1e-12}',
      'EDGE_BAND = {"float32": 1e-5, "float64": 1e-2}',
      "tests/test_grad_analysis.py -k clip_edge", "clip-edge errors hidden by a wide band"),
    M("edge-excluded-both-sides", "real_jax/grad_analysis/_stats.py",
      'edges = {"positive": edge & mask & (a > 0), "negative": edge & mask & (a < 0)}',
      'edges = {"positive": edge & mask, "negative": edge & mask}',
      "tests/test_grad_analysis.py -k clip_edge", "edge tokens counted under both signs"),
    M("bce-identity-unnormalised", "real_jax/grad_analysis/_closed_forms.py",
      "  return auto * closed.normaliser, c_one, closed.group_weights != 0",
      "  return auto, c_one, closed.group_weights != 0",
      "tests/test_grad_analysis.py -k test_end_to_end", "the BCE identity without 1/N"),
    M("closed-form-off", "real_jax/grad_analysis/_closed_forms.py",
      "  return -sign / tau * jax.nn.sigmoid(-(log_c + sign * scores / tau))",
      "  return -sign / tau * jax.nn.sigmoid(-(log_c + sign * scores / tau)) * (1 + 1e-3)",
      "tests/test_grad_analysis.py -k Autodiff", "the label losses' closed form off by 0.1%"),
    M("domination-p90-is-median", "real_jax/grad_analysis/_sweep.py",
      "p90=summary(lambda x: np.quantile(x, 0.9)),", "p90=summary(np.median),",
      "tests/test_grad_analysis.py -k domination", "the sweep's p90 share reported as the median"),
    M("probe-chunks-unordered", "real_jax/grad_analysis/_sweep.py",
      "for c in sorted(parts)), strict=True))", "for c in parts), strict=True))",
      "tests/test_grad_analysis.py -k runner_threads",
      "probe chunks joined in the order the threads finished"),
    M("domination-over-all", "real_jax/domination.py",
      "  mass = jnp.where(members, jnp.abs(mass), 0.0)", "  mass = jnp.abs(mass)",
      "tests/test_training.py -k StepMetrics", "the top share taken over every rollout"),
    M("dominated-at-half", "real_jax/domination.py",
      "return share > 0.5 * (1.0 + DOMINATION_RTOL)", "return share >= 0.5",
      "tests/test_training.py -k dominat",
      "a share of 1/2, up to rounding, called dominated"),
    # -------------------------------------------------- rollout corrections --
    M("tis-uncapped", "real_jax/losses/_correction.py",
      "jnp.exp(jnp.minimum(log_rho, log_cap))", "jnp.exp(log_rho)",
      "tests/test_correction.py -k tis", "importance weights that are never truncated"),
    M("icepop-one-sided", "real_jax/losses/_correction.py",
      "keep = mask & (jnp.abs(log_rho) <= log_cap)", "keep = mask & (log_rho <= log_cap)",
      "tests/test_correction.py -k masks", "IcePop's band without its lower edge"),
    M("seq-mask-any-rollout", "real_jax/losses/_correction.py",
      "~(below & (mean_drift > kl_threshold))", "~(mean_drift > kl_threshold)",
      "tests/test_correction.py -k seq_mask",
      "the off-policy sequence mask dropping correct rollouts too"),
    M("pi-old-is-the-sampler", "real_jax/training/step.py",
      "    if mismatch and not lag:\n      recomputed", "    if False:\n      recomputed",
      "tests/test_training.py -k mismatch_regime",
      "the bfloat16 sampler's log-probs used as pi_old: no mismatch is ever seen"),
    # ------------------------------------------------------ training step --
    M("minibatch-order-fixed", "real_jax/training/step.py",
      "  return jnp.concatenate([jax.random.permutation(jax.random.fold_in(key, e), groups)",
      "  return jnp.concatenate([jnp.arange(groups)",
      "tests/test_training.py -k minibatch_orders", "every epoch in the sampled order"),
    M("no-grad-clip", "real_jax/training/step.py",
      "optax.chain(optax.clip_by_global_norm(cfg.grad_clip),", "optax.chain(optax.identity(),",
      "tests/test_training.py -k UpdateMechanics", "the gradient never clipped"),
    M("no-weight-decay", "real_jax/training/step.py",
      "optax.adamw(learning_rate, weight_decay=cfg.weight_decay)",
      "optax.adamw(learning_rate, weight_decay=0.0)",
      "tests/test_training.py -k UpdateMechanics", "weight decay dropped"),
    M("update-temperature-dropped", "real_jax/training/step.py",
      "tokens.reshape(b * g, -1), prompt_len, temperature)",
      "tokens.reshape(b * g, -1), prompt_len, 1.0)",
      "tests/test_training.py -k UpdateMechanics",
      "the update's log-probs at temperature 1 whatever the sampler's"),
    M("entropy-of-last-update", "real_jax/training/step.py",
      'entropy=outs["entropy"][0]', 'entropy=outs["entropy"][-1]',
      "tests/test_training.py -k UpdateMechanics", "the entropy of the last update's policy"),
    M("traced-tau-ignored", "real_jax/training/step.py",
      "functools.partial(fn, tau=tau) if takes_tau",
      "functools.partial(fn, tau=cfg.tau) if takes_tau",
      "tests/test_training.py -k UpdateMechanics", "the config's tau instead of the vmapped one"),
    M("kl-old-k1", "real_jax/training/step.py",
      "jnp.where(mask, jnp.expm1(s) - s, 0.0)", "jnp.where(mask, jnp.expm1(s), 0.0)",
      "tests/test_training.py -k weights_scores_and_kl", "kl_old without its -s term"),
    M("program-width-not-padded", "real_jax/training/scan.py",
      "    slots = np.concatenate([real, np.full(width - len(real), first)])",
      "    slots = real",
      "tests/test_sweep.py -k same_to_the_bit",
      "a short last program left narrower than the others, so it rounds differently"),
    # --------------------------------------------------- data and sampler --
    M("train-sees-held-out", "real_jax/tasks/_base.py",
      'wanted = {"train": ~held,', 'wanted = {"train": held | ~held,',
      "tests/test_tasks.py tests/test_training.py -k held_out or split or Streams",
      "training draws held-out problems"),
    M("validation-is-everything", "real_jax/tasks/_base.py",
      "    half = (h // 10) % 2 == 0", "    half = (h // 10) % 2 >= 0",
      "tests/test_tasks.py tests/test_training.py -k held_out or split or Streams",
      "the test half folded into validation"),
    M("top-p-ignored", "real_jax/sampling.py",
      "    drawn_from = _top_p_logits(scaled, top_p) if top_p < 1.0 else scaled",
      "    drawn_from = scaled", "tests/test_sampling.py -k top_p", "nucleus sampling switched off"),
    # ------------------------------------------------------------- study --
    M("interval-at-90", "real_jax/reporting/stats.py",
      "CONFIDENCE = 0.95", "CONFIDENCE = 0.90",
      "tests/test_stats.py -k TInterval", "a 90% interval reported as 95%"),
    M("selected-on-test", "real_jax/reporting/study.py",
      '          r["val_pass_at_1"])', '          r["test_pass_at_1"])',
      "tests/test_study.py -k Selection", "learning rates chosen on the test half"),
    M("holm-one-short", "real_jax/reporting/stats.py",
      "    running = max(running, min(1.0, (m - k) * pvalues[key]))",
      "    running = max(running, min(1.0, (m - k - 1) * pvalues[key]))",
      "tests/test_stats.py -k Holm", "Holm's multipliers one short"),
    M("sign-flip-strict", "real_jax/reporting/stats.py",
      "    hits += int(np.count_nonzero(np.abs(block) >= observed - tol))",
      "    hits += int(np.count_nonzero(np.abs(block) > observed + tol))",
      "tests/test_stats.py -k SignFlip", "the observed pattern not counted as extreme"),
    M("families-swapped", "real_jax/reporting/study.py",
      '      family = "primary" if (name, label, metric) in declared else "exploratory"',
      '      family = "exploratory" if (name, label, metric) in declared else "primary"',
      "tests/test_study.py -k Comparisons", "primary and exploratory comparisons swapped"),
    M("code-spans-read-as-prose", "real_jax/reporting/pages.py",
      '    prose = _CODE.sub("", FIELD.sub("", line))', '    prose = FIELD.sub("", line)',
      "tests/test_pages.py -k bare", "settings in code spans flagged as typed results"),
    M("pass-at-k-all", "real_jax/training/step.py",
      "jnp.mean(jnp.any(correct.reshape(-1, k), -1))",
      "jnp.mean(jnp.all(correct.reshape(-1, k), -1))",
      "tests/test_training.py -k sampled_evaluation", "pass@k read as every draw correct"),
    M("net-weight-bin-open", "real_jax/training/metrics.py",
      "(pass_rate <= hi)", "(pass_rate < hi)",
      "tests/test_training.py -k net_weight", "a pass rate on a bin's edge left out"),
    M("lag-newest-first", "real_jax/training/step.py",
      "    lagged = state.lagged[1:] + (state.params,) if lag else ()",
      "    lagged = (state.params,) + state.lagged[:-1] if lag else ()",
      "tests/test_training.py -k earlier", "the lagged sampler one step behind, not k"),
)


def check(mutant: Mutant, root: str = ROOT) -> None:
  """Raises ValueError unless `mutant.old` occurs exactly once in its file."""
  with open(os.path.join(root, mutant.path)) as f:
    count = f.read().count(mutant.old)
  if count != 1:
    raise ValueError(f"mutant {mutant.name}: {mutant.old!r} occurs {count} times in "
                     f"{mutant.path} (expected once)")


def _tracked_files() -> list[str]:
  out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
  # docs/results: the pages' tests list its pages when they are collected.
  return [p for p in out.stdout.splitlines() if p.startswith(("real_jax/", "tests/", "experiments/",
                                                               "benchmarks/", "docs/results/"))
          or p in ("setup.cfg", "pyproject.toml")]


def run_one(mutant: Mutant, files: list[str], cache_dir: str) -> dict:
  check(mutant)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix=f"mutant_{mutant.name}_") as tmp:
    for rel in files:
      os.makedirs(os.path.dirname(os.path.join(tmp, rel)) or tmp, exist_ok=True)
      shutil.copy2(os.path.join(ROOT, rel), os.path.join(tmp, rel))
    target = os.path.join(tmp, mutant.path)
    with open(target) as f:
      text = f.read()
    with open(target, "w") as f:
      f.write(text.replace(mutant.old, mutant.new))
    # The copy first on the path, ahead of the installed (editable) package.
    env = dict(os.environ, PYTHONPATH=tmp, JAX_COMPILATION_CACHE_DIR=cache_dir)
    where = subprocess.run([sys.executable, "-c", "import real_jax; print(real_jax.__file__)"],
                           cwd=tmp, env=env, capture_output=True, text=True)
    if not where.stdout.startswith(tmp):
      raise RuntimeError(f"the copy's package is not the one imported: {where.stdout}{where.stderr}")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           *mutant.tests.split(" -k ")[0].split()]
    if " -k " in mutant.tests:
      cmd += ["-k", mutant.tests.split(" -k ", 1)[1]]
    try:
      proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
      code, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-1:]
    except subprocess.TimeoutExpired:
      code, tail = -1, [f"timed out after {TIMEOUT_S} s"]
  # pytest: 0 all passed, 1 some failed, 5 none collected (a broken selection).
  result = {0: "missed", 1: "caught", 5: "no tests"}.get(code, "caught (error)")
  if code == -1:
    result = "caught (timeout)"
  return {"name": mutant.name, "path": mutant.path, "what": mutant.what, "tests": mutant.tests,
          "result": result, "seconds": round(time.perf_counter() - start, 1),
          "last_line": tail[0] if tail else ""}


def render(report: dict) -> str:
  rows = report["rows"]
  caught = sum(r["result"].startswith("caught") for r in rows)
  lines = ["# Planted bugs (mutants)", "",
           "Written by `make mutants` (tests/mutants.py) from `docs/mutants.json`; do not edit.",
           "Each row is one bug planted in a copy of the repository and the tests run against it.",
           "", f"{caught} of {len(rows)} caught; {report['seconds']:.0f} s on {report['machine']}.",
           "", "| mutant | file | the bug | tests run | result | s |",
           "| --- | --- | --- | --- | --- | --- |"]
  lines += [f"| `{r['name']}` | `{r['path']}` | {r['what']} | `{r['tests']}` | {r['result']} "
            f"| {r['seconds']:.0f} |" for r in rows]
  return "\n".join(lines) + "\n"


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="", help="comma-separated mutant names")
  parser.add_argument("--jobs", type=int, default=2, help="mutants run at once")
  parser.add_argument("--out", default=os.path.join(ROOT, "docs"))
  parser.add_argument("--render", action="store_true", help="rewrite the table from the JSON")
  args = parser.parse_args()
  json_path, md_path = os.path.join(args.out, "mutants.json"), os.path.join(args.out, "mutants.md")
  if args.render:
    with open(json_path) as f:
      report = json.load(f)
  else:
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - {m.name for m in MUTANTS}
    if unknown:
      parser.error(f"--only: unknown mutants {sorted(unknown)}")
    for m in chosen:
      check(m)
    files = _tracked_files()
    cache_dir = os.path.join(ROOT, ".jax_cache", "mutants")
    start = time.perf_counter()
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
      for row in pool.map(lambda m: run_one(m, files, cache_dir), chosen):
        print(f"{row['result']:>16}  {row['name']:<28} {row['seconds']:6.1f}s  {row['last_line']}",
              flush=True)
        rows.append(row)
    report = {"machine": f"{os.cpu_count()}-core CPU", "seconds": time.perf_counter() - start,
              "rows": rows}
    if args.only:  # a partial run updates (or adds) its rows of the last full report
      with open(json_path) as f:
        last = json.load(f)
      known = {r["name"]: r for r in last["rows"]} | {r["name"]: r for r in rows}
      report = dict(last, rows=[known[m.name] for m in MUTANTS if m.name in known])
    with open(json_path, "w") as f:
      json.dump(report, f, indent=1)
  with open(md_path, "w") as f:
    f.write(render(report))
  missed = [r["name"] for r in report["rows"] if not r["result"].startswith("caught")]
  print(f"{len(report['rows']) - len(missed)} of {len(report['rows'])} caught"
        + (f"; not caught: {', '.join(missed)}" if missed else ""))
  return 1 if missed else 0


if __name__ == "__main__":
  sys.exit(main())
