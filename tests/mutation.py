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
   later run resumes it only if the target modules are unchanged since
   (`--restart` starts over); the tests in force are those of the commit a
   session ran on (`resumed_on`).
2. Coverage-based test selection. Once per plan, every module's tests run
   under coverage.py in a pristine copy (`MutationContexts`): each test in
   its own coverage context, each fixture's setup in one credited to every
   test that uses the fixture, each test module's import (its parametrize
   arguments) in one credited to all its tests, and JAX's trace caches cleared before each
   test, so that a line inside a jitted function is credited to every test
   that traces it, not only to the first. `runs/mutation/coverage.json` maps
   each line of a target file to the tests that ran it, and lists the tests
   that start a subprocess (coverage does not follow them).
3. Each worker owns a copy of the tracked files and runs `cosmic-ray exec`
   there, with that copy first on the import path. Cosmic-ray mutates one
   file of the copy and runs the test command, which is this script with
   `--select`: it finds the lines that differ from the pristine copy and runs,
   with `-x`, the module's tests (`TESTS`, slow tests excluded) that can tell
   the mutant apart (`select_tests`): those that ran the lines; if none did
   (a signature's default or annotation runs at import), those that ran the
   enclosing function; and the subprocess tests. A test that runs none of
   the mutated code in this process cannot fail because of it. Module-level
   code that no test ran gets the module's whole set. The suite's default
   numeric mode; the persistent compilation cache (tests/xla_env.py) keeps
   the unmutated programs.
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
import filecmp
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

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


def enclosing_function_lines(source: str, lines: set[int]) -> set[int] | None:
  """Every line of the innermost functions that hold `lines`; None if one is outside any.

  A mutant on a function's signature (a default, an annotation) runs at
  import, in no test's context; the tests that call the function are the
  ones that can tell it apart, and they are the tests that run its body.
  """
  import ast  # noqa: PLC0415
  spans = [(n.lineno if not n.decorator_list else n.decorator_list[0].lineno, n.end_lineno)
           for n in ast.walk(ast.parse(source))
           if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)]
  out = set()
  for line in lines:
    holding = [(a, b) for a, b in spans if a <= line <= b]
    if not holding:
      return None
    a, b = min(holding, key=lambda span: span[1] - span[0])
    out.update(range(a, b + 1))
  return out


def select_tests(path: str, lines: set[int], source: str, coverage_map: dict) -> list[str] | None:
  """The module's tests (node ids, in collection order) that can tell a mutant of `lines` apart.

  Those that ran the lines, themselves or through a fixture they use; if no
  test ran them, those that ran the enclosing function; and every test that
  starts a Python subprocess (coverage sees only this process). None when
  the lines are module-level code that no test ran: then every test can.
  """
  files = tests_for(path).split()
  by_line = coverage_map["lines"].get(path, {})
  def ran(wanted):
    return {t for line in wanted for t in by_line.get(str(line), ())}
  chosen = ran(lines)
  if not chosen:
    function = enclosing_function_lines(source, lines)
    if function is None:
      return None
    chosen = ran(function)
  if not chosen:
    return None
  chosen |= set(coverage_map["subprocess"])
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
  changed = [p for p in _target_files()
             if not filecmp.cmp(p, os.path.join(WORK, "pristine", p), shallow=False)]
  if len(changed) != 1:
    print(f"mutation: expected one mutated file, found {changed}", file=sys.stderr)
    return 3  # counts as killed; the report lists the output
  path = changed[0]
  with open(os.path.join(WORK, "pristine", path)) as f:
    source = f.read()
  with open(os.path.join(os.getcwd(), path)) as f:
    after = f.read().splitlines()
  with open(os.path.join(WORK, "coverage.json")) as f:
    selected = select_tests(path, changed_lines(source.splitlines(), after), source, json.load(f))
  if selected is None:
    print("mutation: module-level code: the module's whole test set", flush=True)
    return _pytest(tests_for(path).split())
  print(f"mutation: the {len(selected)} test(s) that run the mutated code", flush=True)
  return _pytest(selected)


class MutationContexts:
  """pytest plugin for the coverage run: which test runs which line.

  Each test runs in its own coverage context, and each fixture's setup in
  one of its own (`fixture:name`), credited to every test that uses the
  fixture, so a session fixture's work counts for all its tests, not only
  the first. `jax.clear_caches()` before each test makes it trace (and so
  run, under coverage) every jitted line it uses, instead of reusing an
  earlier test's trace; the persistent compilation cache spares the
  compiles. Tests that start a subprocess are listed: coverage does not
  follow them.
  """

  def __init__(self):
    import coverage  # noqa: PLC0415
    self.cov = coverage.Coverage.current()
    self.order, self.fixtures, self.spawners = [], {}, set()
    self.current = ""
    original = subprocess.Popen.__init__
    def spy(popen, *args, **kwargs):
      if self.current:
        self.spawners.add(self.current)
      original(popen, *args, **kwargs)
    subprocess.Popen.__init__ = spy

  @pytest.hookimpl(tryfirst=True)
  def pytest_runtest_setup(self, item):
    import jax  # noqa: PLC0415
    jax.clear_caches()
    self.current = item.nodeid
    self.order.append(item.nodeid)
    self.fixtures[item.nodeid] = list(item.fixturenames)
    self.cov.switch_context(item.nodeid)

  @pytest.hookimpl(hookwrapper=True)
  def pytest_fixture_setup(self, fixturedef, request):
    self.cov.switch_context(f"fixture:{fixturedef.argname}")
    try:
      yield
    finally:
      self.cov.switch_context(self.current)

  @pytest.hookimpl(hookwrapper=True)
  def pytest_make_collect_report(self, collector):
    # Importing a test module runs code under test outside every test (a
    # parametrize argument builds a task); it is credited to all its tests.
    module = isinstance(collector, pytest.Module)
    if module:
      self.cov.switch_context(f"collect:{collector.nodeid}")
    try:
      yield
    finally:
      if module:
        self.cov.switch_context("")

  @pytest.hookimpl(trylast=True)
  def pytest_runtest_teardown(self, item):
    self.current = ""
    self.cov.switch_context("")

  def pytest_sessionfinish(self, session):
    with open(os.environ["MUTATION_ORDER"], "w") as f:
      json.dump({"order": self.order, "fixtures": self.fixtures,
                 "subprocess": sorted(self.spawners)}, f)


def context_users(order: list[str], fixtures: dict[str, list[str]]) -> dict[str, list[str]]:
  """The tests credited with a shared coverage context's lines.

  `fixture:NAME`: every test that uses the fixture; `collect:FILE`: every
  test of the test module whose import ran them. A test's own context is its
  node id and needs no entry.
  """
  users = {}
  for test, names in fixtures.items():
    for name in names:
      users.setdefault(f"fixture:{name}", []).append(test)
  for test in order:
    users.setdefault(f"collect:{test.split('::')[0]}", []).append(test)
  return users


def _coverage_main(test_files: list[str]) -> int:
  """Runs `test_files` with `MutationContexts` (inside `coverage run`)."""
  return pytest.main(["-q", "-p", "no:cacheprovider", "-m", "not slow", *test_files],
                     plugins=[MutationContexts()])


def _coverage_map(tree: str, workers: int) -> None:
  """`runs/mutation/coverage.json`: which tests run each line of the target files."""
  import coverage  # noqa: PLC0415
  files = sorted({f for tests in TESTS.values() for f in tests.split()},
                 key=lambda f: -os.path.getsize(os.path.join(tree, f)))
  shards = [[] for _ in range(workers)]  # the largest files first, each to the lightest shard
  for f in files:
    min(shards, key=lambda s: sum(os.path.getsize(os.path.join(tree, g)) for g in s)).append(f)
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
    p.wait()  # a failing test only costs precision: an unmapped line runs the whole set
  lines, order, spawners = {}, [], []
  for i in range(len(shards)):
    with open(os.path.join(WORK, f"order{i}.json")) as f:
      seen = json.load(f)
    order += seen["order"]
    spawners += seen["subprocess"]
    users = context_users(seen["order"], seen["fixtures"])
    data = coverage.CoverageData(os.path.join(WORK, f"coverage{i}.data"))
    data.read()
    for measured in data.measured_files():
      rel = os.path.relpath(measured, tree)
      for line, contexts in data.contexts_by_lineno(measured).items():
        tests = {t for c in contexts if c for t in users.get(c, [c])}
        if tests:
          lines.setdefault(rel, {}).setdefault(str(line), []).extend(sorted(tests))
  with open(os.path.join(WORK, "coverage.json"), "w") as f:
    json.dump({"lines": lines, "order": order, "subprocess": spawners}, f)


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
    head = _git("rev-parse", "HEAD")
    if plan["commit"] != head:
      # The mutants are those of the target modules: a later commit that
      # leaves them alone (new tests, say) resumes the same sample.
      moved = subprocess.run(["git", "diff", "--quiet", plan["commit"], head, "--", *TARGETS],
                             cwd=ROOT, check=False).returncode
      if moved:
        raise SystemExit(f"runs/mutation was planned on {plan['commit'][:8]}, and the target "
                         "modules have changed since: --restart to start over")
      plan.setdefault("resumed_on", []).append(head)
      with open(plan_path, "w") as f:
        json.dump(plan, f, indent=1)
  else:
    plan = _plan(args.sample, args.seed, args.workers)
  print(f"mutation: {plan['sample']} of {plan['population']} mutants (seed {plan['seed']}), "
        f"{plan['workers']} workers", flush=True)
  procs = []
  for i in range(plan["workers"]):
    tree = os.path.join(WORK, f"tree{i}")
    _copy_tree(tree)  # also undoes a mutation a stopped run left behind
  for p in _target_files():  # what --select compares a worker's copy with
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
  spent = _spent()
  while any(p.poll() is None for p in procs):
    time.sleep(10)
    _record_time(spent, time.time() - start)  # each tick: a killed run keeps its time
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
  _record_time(spent, time.time() - start)
  report()


def _spent() -> dict:
  """The time of the earlier sessions of this plan (`runs/mutation/time.json`)."""
  path = os.path.join(WORK, "time.json")
  return json.load(open(path)) if os.path.exists(path) else {"seconds": 0.0, "sessions": 0}


def _record_time(before: dict, seconds: float) -> None:
  with open(os.path.join(WORK, "time.json"), "w") as f:
    json.dump({"seconds": before["seconds"] + seconds, "sessions": before["sessions"] + 1}, f)


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
  """docs/mutation.{json,md} from the run's databases, or, where `runs/mutation`
  is gone (a new checkout), from the committed record of the run: the triage
  is applied afresh either way."""
  triage = json.load(open(TRIAGE)) if os.path.exists(TRIAGE) else {}
  if os.path.exists(os.path.join(WORK, "plan.json")):
    with open(os.path.join(WORK, "plan.json")) as f:
      plan = json.load(f)
    results, spent = _results(plan), _spent()
  else:
    with open(os.path.join(out_dir, "mutation.json")) as f:
      record = json.load(f)
    plan, results, spent = record["plan"], record["results"], record["time"]
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
      f"{plan['population']:,d} mutants (seed {plan['seed']}) on commit `{plan['commit'][:10]}`"
      + "".join(f" (resumed on `{c[:10]}`, the target modules unchanged)"
                for c in plan.get("resumed_on", [])) + "; "
      f"{done:,d} of them run so far. Killed means the module's tests failed; mutants "
      "argued equivalent leave the denominator. Intervals are 95% Wilson intervals.",
      "",
      *([f"Run time: {data['time']['seconds'] / 60:.0f} minutes over {data['time']['sessions']} "
         f"session(s) on {plan['workers']} workers, the coverage map included."]
        if data.get("time", {}).get("sessions") else []),
      "",
      "| module | killed | of them by a test added after the run | survived | equivalent "
      "| kill rate | 95% interval |",
      "| --- | --- | --- | --- | --- | --- | --- |",
  ]
  for name, g in [*sorted(s["modules"].items()), ("**all**", s["total"])]:
    lo, hi = g["interval"]
    lines.append(f"| {name} | {g['killed']} | {g['later']} | {g['survived']} | {g['equivalent']} "
                 f"| {_pct(g['rate'])} | {_pct(lo)} to {_pct(hi)} |")
  raw = summarise(data["results"], {})["total"]  # the run's own verdicts, before any triage
  lo, hi = raw["interval"]
  lines += ["", f"Before triage, as the run measured it (every survivor counted, none argued "
            f"equivalent): {raw['killed']} of {raw['killed'] + raw['survived']} killed, "
            f"{_pct(raw['rate'])} ({_pct(lo)} to {_pct(hi)}). The triage below is what moves "
            "the table's rates: each \"killed\" names the test that kills the mutant now "
            "(checked by planting it), each \"equivalent\" says why no input tells it apart."]
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
