"""Multi-process runs through `jax.distributed`, proven on one machine.

Each run starts 2 processes x 2 forced CPU devices (4 global devices, gloo
collectives) through `experiments/launch_local_multihost.py`, exactly as a
user would. The launcher's `--timeout` is each test's hard limit: on a hang
it kills every process and the test fails with the log tails of both.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

from numerics import assert_allclose_scaled
import numpy as np
import pytest

from real_jax import distributed
from real_jax import metric_names
from real_jax.training import metrics
from real_jax.training import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "experiments", "launch_local_multihost.py")
TINY = os.path.join(ROOT, "experiments", "configs", "tiny.py")
SCRIPTS = os.path.join(ROOT, "tests", "scripts")
TIMEOUT_S = 420  # per launch; a run here takes 10 to 60 s on a 2-core CPU


@pytest.fixture(scope="session")
def env():
  """The subprocesses' environment: the repository importable (quick compiles: conftest)."""
  return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))


@pytest.fixture(scope="session")
def shared_base(tmp_path_factory) -> str:
  """A base-model folder that the first multi-process run of the module fills."""
  return str(tmp_path_factory.mktemp("multihost_base"))


def launcher_args(n: int, logdir, *, devices: int = 2, timeout: float = TIMEOUT_S,
                  grace: float = 60) -> list[str]:
  return [sys.executable, LAUNCHER, str(n), f"--devices_per_process={devices}",
          f"--timeout={timeout}", f"--grace={grace}", f"--logdir={logdir}", "--"]


def launch(env, logdir, n: int, *command: str, devices: int = 2, expect: int = 0,
           **kwargs) -> subprocess.CompletedProcess:
  """Runs `command` as `n` processes; fails with the launcher's report unless it exits `expect`."""
  proc = subprocess.run([*launcher_args(n, logdir, devices=devices, **kwargs),
                         sys.executable, *command],
                        capture_output=True, text=True, env=env, cwd=ROOT,
                        timeout=kwargs.get("timeout", TIMEOUT_S) + 60)
  assert proc.returncode == expect, (
      f"exit code {proc.returncode}, expected {expect}:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}")
  return proc


def read_metrics(folder: str) -> dict[str, np.ndarray]:
  recs = metrics.read_metrics(folder)
  assert [r["step"] for r in recs] == list(range(len(recs))), "each step exactly once"
  return {k: np.array([np.nan if r[k] is None else r[k] for r in recs], float)
          for k in metric_names.METRICS}


def files_of(folder: str) -> dict[str, bytes]:
  out = {}
  for here, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(here, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = f.read()
  return out


# The sweep test's first group is train_scan's program (the same 4 seeds): on
# one worker, in this order, process 0 finds it in the compilation cache.
@pytest.mark.xdist_group("multihost_tiny")
class TestTrainScan:

  @pytest.mark.slow
  def test_two_processes_equal_one_process_and_one_device(self, env, shared_base, tmp_path):
    seeds = "0,1,2,3"
    flags = [f"--config={TINY}", f"--seeds={seeds}", f"--config.base.dir={shared_base}"]
    command = ["-m", "real_jax.train_scan", *flags]
    proc = launch(env, tmp_path / "logs2", 2, *command, f"--workdir={tmp_path / 'two'}")
    launch(env, tmp_path / "logs1", 1, *command, f"--workdir={tmp_path / 'four'}", devices=4)
    one = subprocess.run([sys.executable, *command, f"--workdir={tmp_path / 'one'}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT_S,
                         env=dict(env, JAX_PLATFORMS="cpu"))
    assert one.returncode == 0, one.stderr[-3000:]
    assert "1 process(es), 1 device(s)" in one.stdout

    # Process 0 built the base model once, and both processes used it.
    assert len(os.listdir(shared_base)) == 1
    assert "2 process(es), 4 device(s) (2 local)" in proc.stdout
    # Only process 0 reports.
    with open(tmp_path / "logs2" / "process1.log") as f:
      assert "seeds x" not in f.read()
    with open(tmp_path / "logs2" / "process0.log") as f:
      assert "4 seeds x 4 steps" in f.read()
    # The final parameters: one multi-process orbax checkpoint.
    assert os.path.exists(tmp_path / "two" / "final_params" / "_CHECKPOINT_METADATA")

    for seed in seeds.split(","):
      two, four, single = (read_metrics(str(tmp_path / run / f"seed{seed}"))
                           for run in ("two", "four", "one"))
      for name in metric_names.METRICS:
        for label, ref in (("1 process x 4 devices", four), ("1 device", single)):
          # The metrics are means of rewards, weights and log-probability
          # differences whose terms are of order 1.
          assert_allclose_scaled(two[name], ref[name], floor=1.0,
                                 err_msg=f"seed {seed}, {name}: 2 processes vs {label}")
      # Rewards are counts over the whole batch: equal, not just close.
      np.testing.assert_array_equal(two["reward_mean"], single["reward_mean"])


@pytest.mark.xdist_group("multihost_tiny")
class TestSweep:

  @pytest.mark.slow
  def test_killed_and_restarted_equals_uninterrupted(self, env, shared_base, tmp_path):
    command = [sys.executable, "-m", "real_jax.sweep", f"--config={TINY}",
               f"--config.base.dir={shared_base}"]
    launch(env, tmp_path / "logs_ref", 2, *command[1:], f"--workdir={tmp_path / 'ref'}")

    # The same sweep, killed (SIGKILL to the launcher and both processes) once
    # its first group is written and before the second is.
    workdir = str(tmp_path / "resumed")
    # train_scan's test compiled the first group's program (the same 4 seeds).
    first = sweep.product(loss=["real"], seed=[0, 1, 2, 3])
    second = sweep.product(loss=["grpo"], seed=[0, 1, 2, 3])
    proc = subprocess.Popen([*launcher_args(2, tmp_path / "logs_killed"), *command,
                             f"--workdir={workdir}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_S
    try:
      while not all(os.path.exists(sweep.done_marker(workdir, p)) for p in first):
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "the first group never finished"
        time.sleep(0.05)
    finally:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
    assert not any(os.path.exists(sweep.done_marker(workdir, p)) for p in second)
    assert not os.path.exists(os.path.join(workdir, "summary.csv"))

    out = launch(env, tmp_path / "logs_restart", 2, *command[1:], f"--workdir={workdir}")
    assert "4 run, 4 skipped" in out.stdout
    ref, resumed = files_of(str(tmp_path / "ref")), files_of(workdir)
    assert sorted(ref) == sorted(resumed)
    assert any(name.endswith("metrics.jsonl") for name in ref)
    for name, content in ref.items():
      assert resumed[name] == content, f"{name} differs from the uninterrupted run's"
    rows = list(csv.DictReader(open(os.path.join(workdir, "summary.csv"))))
    assert sorted(r["loss"] for r in rows if r["row"] == "point") == ["grpo"] * 4 + ["real"] * 4


@pytest.mark.slow
def test_tunix_adapter_over_two_processes_equals_one_device(env, tmp_path):
  pytest.importorskip("tunix", reason="the `tunix` extra is not installed")
  proc = launch(env, tmp_path / "logs", 2, os.path.join(SCRIPTS, "tunix_adapter_multihost.py"))
  result = json.loads(proc.stdout.split("RESULT", 1)[1].splitlines()[0])
  assert (result["processes"], result["devices"]) == (2, 4)
  assert 2 in result["processes_per_parameter"]  # parameters really span both processes
  ref_loss, got_loss = result["loss"]
  assert ref_loss > 0
  assert_allclose_scaled([got_loss], [ref_loss])
  for i, (ref, got) in enumerate(result["grad"]):
    assert_allclose_scaled(got, ref, err_msg=f"gradient leaf {i}")


class TestFailures:
  """A lost or stuck peer ends every process with an error naming the process and collective."""

  @pytest.mark.parametrize("mode, first, code", [("lost", 1, 7), ("stuck", 0, 3)])
  def test_peer_failure_ends_the_run(self, env, tmp_path, mode, first, code):
    start = time.monotonic()
    proc = launch(env, tmp_path / "logs", 2, os.path.join(SCRIPTS, "multihost_peer.py"), mode,
                  "--collective_timeout=5", expect=code, grace=30, timeout=120)
    assert time.monotonic() - start < 100
    assert f"FAILED: process {first} exited with code {code} first." in proc.stdout
    with open(tmp_path / "logs" / "process0.log") as f:
      log = f.read()
    assert ("real_jax.distributed: ERROR: process 0 of 2: collective "
            "'barrier after the peer' did not finish within 5s") in log
    assert "passed the barrier" not in log

  def test_peers_that_meet_pass(self, env, tmp_path):
    proc = launch(env, tmp_path / "logs", 2, os.path.join(SCRIPTS, "multihost_peer.py"), "ok",
                  timeout=120)
    # Process 0's broadcast reached process 1, and the gather holds both halves.
    with open(tmp_path / "logs" / "process1.log") as f:
      assert "process 1: passed the barrier; lead 0, gathered [0, 1, 2, 3]" in f.read()
    assert "all 2 process(es) finished" in proc.stdout


class TestInitialize:

  @pytest.mark.parametrize("kwargs, match", [
      (dict(coordinator_address="127.0.0.1:1234"), "without --num_processes, --process_id"),
      (dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=2),
       r"`process_id` must be in 0\.\.1"),
      (dict(coordinator_address="127.0.0.1:1234", num_processes=0, process_id=0),
       "`num_processes` must be a positive integer"),
      (dict(coordinator_address="localhost", num_processes=2, process_id=0), "HOST:PORT"),
      (dict(timeout_s=0), "`collective_timeout` must be a positive"),
  ])
  def test_bad_flags(self, kwargs, match):
    with pytest.raises(ValueError, match=match):
      distributed.initialize(**kwargs)

  def test_single_process_needs_nothing(self):
    assert distributed.initialize() is False
    assert distributed.is_lead()
    distributed.barrier("alone")  # no-ops
    assert distributed.broadcast_from_lead([1, 2], "alone") == [1, 2]
    np.testing.assert_array_equal(distributed.allgather(np.arange(3), "alone"), np.arange(3))

  def test_launcher_refuses_bad_arguments(self):
    for args, match in [(["2", "--", ], "no command after --"),
                        (["0", "--", "true"], "N must be at least 1"),
                        (["2", "true"], "usage")]:
      proc = subprocess.run([sys.executable, LAUNCHER, *args], capture_output=True, text=True,
                            timeout=60)
      assert proc.returncode != 0 and match in proc.stderr + proc.stdout, (args, proc.stderr)

  def test_launcher_returns_the_first_failure(self, tmp_path):
    # Process 1 fails at once; process 0 would run for an hour and is killed after the grace.
    script = "import sys, time; i = sys.argv[-1].split('=')[1]; " \
             "sys.exit(5) if i == '1' else time.sleep(3600)"
    start = time.monotonic()
    proc = subprocess.run([*launcher_args(2, tmp_path, grace=2, timeout=60), sys.executable,
                           "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5, proc.stdout
    assert "FAILED: process 1 exited with code 5 first." in proc.stdout
    assert time.monotonic() - start < 30

  def test_launcher_timeout_kills_every_process(self, tmp_path):
    proc = subprocess.run([*launcher_args(2, tmp_path, timeout=2), sys.executable, "-c",
                           "import time; print('working', flush=True); time.sleep(3600)"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 124
    assert "TIMEOUT" in proc.stdout
    assert proc.stdout.count("working") >= 2  # both tails shown


def test_only_the_lead_writes_sweep_files(tmp_path, tiny_config, monkeypatch):
  cfg = tiny_config(steps=2, eval_every=1)
  points = sweep.product(loss=["real"], seed=[0, 1])
  fake = {k: np.zeros(2) for k in metric_names.STEP_METRICS}
  fake.update({k: np.zeros(3) for k in metric_names.EVAL_METRICS})
  monkeypatch.setattr(distributed, "is_lead", lambda: False)
  status = sweep.run_grid(cfg, points, str(tmp_path / "w"), log=lambda _: None,
                           run_group=lambda _, members: [fake] * len(members))
  assert len(status["done"]) == 2
  assert not os.path.exists(tmp_path / "w")
