r"""`make mutation`: cosmic-ray over the modules that decide a number, on a seeded sample.

  python tests/mutation.py [--sample 300] [--seed 0] [--workers 2] [--minutes M]
  python tests/mutation.py --report      # docs/mutation.json and docs/mutation.md only

The tool is cosmic-ray (8.7), not mutmut 3: cosmic-ray runs each mutant's
tests in a fresh process, and mutmut 3 forks its children from a process that
has already traced the code under test; a `jax.jit` trace cached before the
fork would run the unmutated code and let the mutant survive.

How a run goes (everything under `runs/mutation/`, resumable):

1. `cosmic-ray init` lists every mutant of `TARGETS` with its core operators;
   a seeded uniform sample of `--sample` of them is kept and dealt round
   robin to `--workers` session databases. The plan records the commit: a
   later run on other code refuses to resume (`--restart` starts over).
2. Coverage-based test selection. Once per plan, every module's tests run
   under coverage.py in a pristine copy, each test in its own coverage context
   and with JAX's trace caches cleared before it (`MutationContexts`): a line
   inside a jitted function is then credited to every test that traces it,
   not only to the first. `runs/mutation/coverage.json` maps each line of a
   target file to the tests that ran it.
3. Each worker owns a copy of the tracked files and runs `cosmic-ray exec`
   there, with that copy first on the import path. Cosmic-ray mutates one
   file of the copy and runs the test command, which is this script with
   `--select`: it finds the lines that differ from the pristine copy and runs,
   with `-x`, the module's tests (`TESTS`, slow tests excluded) that covered
   those lines. If they all pass, or no test covered the lines (module-level
   code, or code only a subprocess runs), it runs all of the module's tests,
   so a mutant survives only what the full set would let it survive: the
   selection saves time, never a kill. The suite's default numeric mode; the
   persistent compilation cache (tests/xla_env.py) keeps the unmutated programs.
4. `--minutes` stops the workers after that long; pending mutants stay
   pending, and the next run refreshes the copies and carries on. The time
   of every session is added up in `runs/mutation/time.json` and reported.
5. The report: per module and overall, killed / (killed + survived), with
   its 95% Wilson interval, and every survivor with its triage from
   `tests/mutation_triage.json` (`equivalent` with the reason no input can
   tell the two apart, or the test that now kills it). Mutants argued
   equivalent leave the denominator.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "runs", "mutation")
TRIAGE = os.path.join(ROOT, "tests", "mutation_triage.json")
TIMEOUT_S = 600  # per mutant; a mutant whose tests hang counts as killed (cosmic-ray's rule)

# The modules under mutation and the tests that exercise each (pytest
# arguments). The first matching prefix wins.
TESTS = {
    "real_jax/losses/": "tests/test_losses.py tests/test_correction.py",
    "real_jax/grad_analysis/_closed_forms.py": "tests/test_grad_analysis.py",
    "real_jax/domination.py": "tests/test_grad_analysis.py tests/test_layers.py tests/test_losses.py",
    "real_jax/sampling.py": "tests/test_sampling.py tests/test_training.py",
    "real_jax/tasks/": "tests/test_tasks.py tests/test_math_verify.py",
    "real_jax/training/step.py": "tests/test_training.py tests/test_correction.py",
    "real_jax/training/metrics.py": "tests/test_training.py",
    "real_jax/reporting/study.py": "tests/test_study.py tests/test_results.py",
}
TARGETS = (
    "real_jax/losses", "real_jax/grad_analysis/_closed_forms.py", "real_jax/domination.py",
    "real_jax/sampling.py", "real_jax/tasks", "real_jax/training/step.py",
    "real_jax/training/metrics.py", "real_jax/reporting/study.py",
)


def _target_files() -> list[str]:
  files = []
  for t in TARGETS:
    if t.endswith(".py"):
      files.append(t)
    else:
      files += sorted(os.path.join(t, f) for f in os.listdir(os.path.join(ROOT, t))
                      if f.endswith(".py"))
  return files


def tests_for(path: str) -> str:
  for prefix, tests in TESTS.items():
    if path.startswith(prefix):
      return tests
  raise KeyError(f"no tests listed for {path}")


def _digest(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


# ------------------------------------------------------------ --select ----


def changed_lines(pristine: list[str], mutated: list[str]) -> set[int]:
  """1-based line numbers of `pristine` that the mutation replaced or deleted.

  A pure insertion is charged to the line before it (the statement it joins).
  """
  import difflib  # noqa: PLC0415
  out = set()
  for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=pristine, b=mutated,
                                                   autojunk=False).get_opcodes():
    if tag in ("replace", "delete"):
      out.update(range(i1 + 1, i2 + 1))
    elif tag == "insert":
      out.add(max(i1, 1))
  return out


def select_tests(path: str, lines: set[int], coverage_map: dict) -> list[str]:
  """The module's tests (node ids, in collection order) that ran any of `lines`."""
  files = tests_for(path).split()
  by_line = coverage_map["lines"].get(path, {})
  chosen = set()
  for line in lines:
    chosen.update(by_line.get(str(line), ()))
  return [t for t in coverage_map["order"] if t in chosen and t.split("::")[0] in files]


def _pytest(args: list[str]) -> int:
  cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
         "-m", "not slow", *args]
  # The checkout's compilation cache, shared by the workers: the unmutated
  # programs compile once for the whole run.
  import importlib.metadata  # noqa: PLC0415
  cache = os.path.join(ROOT, ".jax_cache", f"jax-{importlib.metadata.version('jax')}")
  env = dict(os.environ, PYTHONPATH=os.getcwd(), JAX_COMPILATION_CACHE_DIR=cache)
  return subprocess.run(cmd, env=env, check=False).returncode


def select_and_run() -> int:
  """The test command, run by cosmic-ray in a worker's copy (the cwd)."""
  with open(os.path.join(WORK, "pristine.json")) as f:
    pristine = json.load(f)
  changed = [p for p, d in pristine.items() if _digest(os.path.join(os.getcwd(), p)) != d]
  if len(changed) != 1:
    print(f"mutation: expected one mutated file, found {changed}", file=sys.stderr)
    return 3  # counts as killed; the report lists the output
  path = changed[0]
  with open(os.path.join(WORK, "pristine", path)) as f:
    before = f.read().splitlines()
  with open(os.path.join(os.getcwd(), path)) as f:
    after = f.read().splitlines()
  with open(os.path.join(WORK, "coverage.json")) as f:
    selected = select_tests(path, changed_lines(before, after), json.load(f))
  if selected:
    print(f"mutation: {len(selected)} covering test(s) first", flush=True)
    code = _pytest(selected)
    if code not in (0, 5):  # 5: none collected
      return code
  print("mutation: the module's whole test set", flush=True)
  return _pytest(tests_for(path).split())


class MutationContexts:
  """pytest plugin for the coverage run: one coverage context per test, cold traces.

  `jax.clear_caches()` before each test makes it trace (and so run, under
  coverage) every jitted line it uses, instead of reusing an earlier test's
  trace; the persistent compilation cache still spares the compiles.
  """

  def __init__(self):
    import coverage  # noqa: PLC0415
    self.cov = coverage.Coverage.current()
    self.order = []

  def pytest_runtest_setup(self, item):
    import jax  # noqa: PLC0415
    jax.clear_caches()
    self.order.append(item.nodeid)
    self.cov.switch_context(item.nodeid)

  def pytest_runtest_teardown(self, item):
    self.cov.switch_context("")

  def pytest_sessionfinish(self, session):
    with open(os.environ["MUTATION_ORDER"], "w") as f:
      json.dump(self.order, f)


def _coverage_main(test_files: list[str]) -> int:
  """Runs `test_files` with `MutationContexts` (inside `coverage run`)."""
  import pytest  # noqa: PLC0415
  return pytest.main(["-q", "-p", "no:cacheprovider", "-m", "not slow", *test_files],
                     plugins=[MutationContexts()])


def _coverage_map(tree: str, workers: int) -> None:
  """`runs/mutation/coverage.json`: {"lines": {file: {line: [test ids]}}, "order": [...]}."""
  import coverage  # noqa: PLC0415
  files = sorted({f for tests in TESTS.values() for f in tests.split()})
  shards = [files[i::workers] for i in range(workers)]
  procs = []
  for i, shard in enumerate(shards):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.path.join(tree, "tests")]),
               MUTATION_ORDER=os.path.join(WORK, f"order{i}.json"))
    include = ",".join(os.path.join(tree, f) for f in _target_files())
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "coverage", "run", f"--data-file={WORK}/coverage{i}.data",
         f"--include={include}", os.path.join(tree, "tests", "mutation.py"), "--coverage",
         *shard], cwd=tree, env=env, stdout=subprocess.DEVNULL))
  for p in procs:
    p.wait()  # a failing test only costs precision: the fallback runs the whole set
  lines, order = {}, []
  for i in range(len(shards)):
    with open(os.path.join(WORK, f"order{i}.json")) as f:
      order += json.load(f)
    data = coverage.CoverageData(os.path.join(WORK, f"coverage{i}.data"))
    data.read()
    for measured in data.measured_files():
      rel = os.path.relpath(measured, tree)
      for line, contexts in data.contexts_by_lineno(measured).items():
        tests = [c for c in contexts if c]
        if tests:
          lines.setdefault(rel, {}).setdefault(str(line), []).extend(tests)
  with open(os.path.join(WORK, "coverage.json"), "w") as f:
    json.dump({"lines": lines, "order": order}, f)


# ---------------------------------------------------------------- plan ----


def _git(*args: str) -> str:
  return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                        check=True).stdout.strip()


def _copy_tree(dest: str) -> None:
  """The tracked files (as they are in the working tree) into `dest`."""
  for rel in _git("ls-files").splitlines():
    src = os.path.join(ROOT, rel)
    if not os.path.isfile(src):
      continue
    out = os.path.join(dest, rel)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copy2(src, out)


def _config(path: str) -> None:
  modules = ", ".join(f'"{m}"' for m in _target_files())
  with open(path, "w") as f:
    f.write(f"""[cosmic-ray]
module-path = [{modules}]
timeout = {TIMEOUT_S}
excluded-modules = []
test-command = "{sys.executable} {os.path.join(ROOT, 'tests', 'mutation.py')} --select"

[cosmic-ray.distributor]
name = "local"
""")


def _plan(sample: int, seed: int, workers: int) -> dict:
  from cosmic_ray.work_db import WorkDB  # noqa: PLC0415
  from cosmic_ray.work_db import use_db  # noqa: PLC0415

  os.makedirs(WORK, exist_ok=True)
  config = os.path.join(WORK, "cosmic-ray.toml")
  _config(config)
  all_db = os.path.join(WORK, "all.sqlite")
  if os.path.exists(all_db):
    os.remove(all_db)
  subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "init", config, all_db], cwd=ROOT,
                 check=True)
  with use_db(all_db, WorkDB.Mode.open) as db:
    items = sorted(db.work_items, key=lambda w: (str(w.mutations[0].module_path),
                                                 w.mutations[0].operator_name,
                                                 w.mutations[0].occurrence))
  chosen = random.Random(seed).sample(items, min(sample, len(items)))
  # Each worker's database holds its share of the sample and nothing else
  # (marking the other 9,000-odd mutants skipped made every read of it slow).
  for i in range(workers):
    db_path = os.path.join(WORK, f"worker{i}.sqlite")
    if os.path.exists(db_path):
      os.remove(db_path)
    with use_db(db_path, WorkDB.Mode.create) as db:
      db.add_work_items(chosen[i::workers])
  plan = {"commit": _git("rev-parse", "HEAD"), "sample": len(chosen), "population": len(items),
          "seed": seed, "workers": workers}
  with open(os.path.join(WORK, "plan.json"), "w") as f:
    json.dump(plan, f, indent=1)
  return plan


def run(args) -> None:
  plan_path = os.path.join(WORK, "plan.json")
  if args.restart and os.path.exists(WORK):
    shutil.rmtree(WORK)
  if os.path.exists(plan_path):
    with open(plan_path) as f:
      plan = json.load(f)
    if plan["commit"] != _git("rev-parse", "HEAD"):
      raise SystemExit(f"runs/mutation was planned on {plan['commit'][:8]}, HEAD is another "
                       "commit: --restart to start over")
  else:
    plan = _plan(args.sample, args.seed, args.workers)
  print(f"mutation: {plan['sample']} of {plan['population']} mutants (seed {plan['seed']}), "
        f"{plan['workers']} workers", flush=True)
  procs = []
  for i in range(plan["workers"]):
    tree = os.path.join(WORK, f"tree{i}")
    _copy_tree(tree)  # also undoes a mutation a stopped run left behind
  with open(os.path.join(WORK, "pristine.json"), "w") as f:
    json.dump({p: _digest(os.path.join(WORK, "tree0", p)) for p in _target_files()}, f)
  for p in _target_files():
    os.makedirs(os.path.dirname(os.path.join(WORK, "pristine", p)), exist_ok=True)
    shutil.copy2(os.path.join(WORK, "tree0", p), os.path.join(WORK, "pristine", p))
  start = time.time()
  if not os.path.exists(os.path.join(WORK, "coverage.json")):
    print("mutation: mapping lines to the tests that run them (coverage.py)", flush=True)
    _coverage_map(os.path.join(WORK, "tree0"), plan["workers"])
    print(f"  mapped in {time.time() - start:.0f}s", flush=True)
  for i in range(plan["workers"]):
    tree = os.path.join(WORK, f"tree{i}")
    log = open(os.path.join(WORK, f"worker{i}.log"), "a")
    env = dict(os.environ, PYTHONPATH=tree)
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "cosmic_ray.cli", "exec", os.path.join(WORK, "cosmic-ray.toml"),
         os.path.join(WORK, f"worker{i}.sqlite")], cwd=tree, env=env, stdout=log, stderr=log,
        start_new_session=True))
  deadline = start + 60 * args.minutes if args.minutes else None
  while any(p.poll() is None for p in procs):
    time.sleep(10)
    done, total = _progress(plan)
    print(f"  {done}/{total} mutants, {time.time() - start:.0f}s", flush=True)
    if deadline and time.time() > deadline:
      for p in procs:
        if p.poll() is None:
          os.killpg(p.pid, signal.SIGTERM)
      print("mutation: time is up; the pending mutants stay for the next run", flush=True)
      break
  for p in procs:
    p.wait()
  _add_time(time.time() - start)
  report()


def _add_time(seconds: float) -> None:
  path = os.path.join(WORK, "time.json")
  spent = json.load(open(path)) if os.path.exists(path) else {"seconds": 0.0, "sessions": 0}
  spent["seconds"] += seconds
  spent["sessions"] += 1
  with open(path, "w") as f:
    json.dump(spent, f)


# -------------------------------------------------------------- report ----


def _results(plan: dict) -> list[dict]:
  from cosmic_ray.work_db import WorkDB  # noqa: PLC0415
  from cosmic_ray.work_db import use_db  # noqa: PLC0415
  out = []
  for i in range(plan["workers"]):
    with use_db(os.path.join(WORK, f"worker{i}.sqlite"), WorkDB.Mode.open) as db:
      for item, result in db.completed_work_items:
        m = item.mutations[0]
        out.append({"module": str(m.module_path), "operator": m.operator_name,
                    "occurrence": m.occurrence, "line": m.start_pos[0],
                    "definition": m.definition_name,
                    "outcome": str(result.test_outcome.value) if result.test_outcome else
                    str(result.worker_outcome.value),
                    "diff": result.diff or ""})
  return sorted(out, key=lambda r: (r["module"], r["line"], r["operator"], r["occurrence"]))


def _progress(plan: dict) -> tuple[int, int]:
  try:
    return len(_results(plan)), plan["sample"]
  except Exception:  # a database being written
    return -1, plan["sample"]


def key(r: dict) -> str:
  return f"{r['module']}:{r['operator']}:{r['occurrence']}"


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
  """The 95% Wilson score interval of k successes in n."""
  if n == 0:
    return (math.nan, math.nan)
  p = k / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return (centre - half, centre + half)


def summarise(results: list[dict], triage: dict) -> dict:
  """Kill rates per module and overall, equivalent mutants left out."""
  rows = {}
  for r in results:
    verdict = triage.get(key(r), {}).get("verdict")
    group = rows.setdefault(r["module"], {"killed": 0, "later": 0, "survived": 0,
                                          "equivalent": 0})
    if r["outcome"] != "survived":
      group["killed"] += 1
    elif verdict == "killed":  # by a test written after the run: named in the triage
      group["killed"] += 1
      group["later"] += 1
    else:
      group["equivalent" if verdict == "equivalent" else "survived"] += 1
  total = {k: sum(g[k] for g in rows.values())
           for k in ("killed", "later", "survived", "equivalent")}
  for g in [*rows.values(), total]:
    n = g["killed"] + g["survived"]
    g["rate"] = g["killed"] / n if n else math.nan
    g["interval"] = wilson(g["killed"], n)
  return {"modules": rows, "total": total}


def report(out_dir: str = os.path.join(ROOT, "docs")) -> None:
  with open(os.path.join(WORK, "plan.json")) as f:
    plan = json.load(f)
  results = _results(plan)
  triage = json.load(open(TRIAGE)) if os.path.exists(TRIAGE) else {}
  time_path = os.path.join(WORK, "time.json")
  spent = json.load(open(time_path)) if os.path.exists(time_path) else None
  data = {"plan": plan, "results": results, "summary": summarise(results, triage),
          "time": spent}
  with open(os.path.join(out_dir, "mutation.json"), "w") as f:
    json.dump(data, f, indent=1)
  with open(os.path.join(out_dir, "mutation.md"), "w") as f:
    f.write(markdown(data, triage))
  print(markdown(data, triage))


def _pct(x: float) -> str:
  return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def markdown(data: dict, triage: dict) -> str:
  plan, s = data["plan"], data["summary"]
  done = len(data["results"])
  lines = [
      "# Mutation testing",
      "",
      f"cosmic-ray 8.7 over the modules that decide a number (`make mutation`, "
      f"`tests/mutation.py`): a seeded uniform sample of {plan['sample']:,d} of "
      f"{plan['population']:,d} mutants (seed {plan['seed']}) on commit `{plan['commit'][:10]}`; "
      f"{done:,d} of them run so far. Killed means the module's tests failed; mutants "
      "argued equivalent leave the denominator. Intervals are 95% Wilson intervals.",
      "",
      *([f"Run time: {data['time']['seconds'] / 60:.0f} minutes over {data['time']['sessions']} "
         f"session(s) on {plan['workers']} workers, the coverage map included."]
        if data.get("time") else []),
      "",
      "| module | killed | of them by a test added after the run | survived | equivalent "
      "| kill rate | 95% interval |",
      "| --- | --- | --- | --- | --- | --- | --- |",
  ]
  for name, g in [*sorted(s["modules"].items()), ("**all**", s["total"])]:
    lo, hi = g["interval"]
    lines.append(f"| {name} | {g['killed']} | {g['later']} | {g['survived']} | {g['equivalent']} "
                 f"| {_pct(g['rate'])} | {_pct(lo)} to {_pct(hi)} |")
  survivors = [r for r in data["results"] if r["outcome"] == "survived"]
  lines += ["", f"## Survivors ({len(survivors)})", ""]
  if not survivors:
    lines.append("None.")
  for r in survivors:
    t = triage.get(key(r))
    verdict = (f"**{t['verdict']}**: {t['why']}" if t else "**not triaged yet**")
    diff = [d for d in r["diff"].splitlines() if d.startswith(("+", "-"))
            and not d.startswith(("+++", "---"))]
    lines.append(f"- `{r['module']}:{r['line']}` ({r['definition']}, {r['operator']}): "
                 f"`{' / '.join(d.strip() for d in diff)}`. {verdict}")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sample", type=int, default=300)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
  parser.add_argument("--restart", action="store_true")
  parser.add_argument("--report", action="store_true")
  parser.add_argument("--select", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--coverage", nargs="+", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.coverage:
    sys.exit(_coverage_main(args.coverage))
  if args.select:
    sys.exit(select_and_run())
  if args.report:
    report()
    return
  run(args)


if __name__ == "__main__":
  main()
