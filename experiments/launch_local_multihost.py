r"""N local processes of one real_jax command, as JAX's multi-controller runtime runs them.

  python experiments/launch_local_multihost.py N [--devices_per_process=2] [--timeout=900] \
      [--logdir=DIR] -- python -m real_jax.train_scan --config=... --workdir=... --seeds=0,1,2,3

Starts N copies of the command on this machine, each on the CPU with
`--devices_per_process` forced host devices (`XLA_FLAGS`), and appends
`--coordinator_address=127.0.0.1:PORT --num_processes=N --process_id=I`
(PORT: a free one). The processes meet through `jax.distributed` and talk
through gloo collectives, exactly as on N hosts; nothing here is a protocol
of real_jax's own.

Process 0's output is shown as it comes; every process's output goes to
`DIR/process<I>.log` (default: a temporary folder). When a process fails, the
others get `--grace` seconds to end by themselves (a lost peer ends them
through a failed collective), then are killed. The launcher exits with the
first failure's exit code and prints the log tails; if the whole run
outlasts `--timeout` seconds, every process is killed, the tails are
printed and the exit code is 124. Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIMEOUT_EXIT = 124
TAIL_LINES = 40


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def tail(path: str, lines: int = TAIL_LINES) -> str:
  try:
    with open(path, errors="replace") as f:
      return "".join(f.readlines()[-lines:])
  except OSError as e:
    return f"(no log: {e})"


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  if "--" not in argv:
    raise SystemExit("usage: launch_local_multihost.py N [options] -- COMMAND [FLAGS...]")
  cut = argv.index("--")
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("num_processes", type=int, help="processes to start")
  parser.add_argument("--devices_per_process", type=int, default=2,
                      help="forced CPU devices per process (default 2)")
  parser.add_argument("--timeout", type=float, default=900.0,
                      help="seconds before every process is killed (default 900)")
  parser.add_argument("--grace", type=float, default=60.0,
                      help="seconds the others get to end after a failure (default 60)")
  parser.add_argument("--logdir", default=None, help="where process<I>.log go")
  parser.add_argument("--port", type=int, default=0, help="coordinator port (default: a free one)")
  args = parser.parse_args(argv[:cut])
  command = argv[cut + 1:]
  if args.num_processes < 1:
    parser.error(f"N must be at least 1; got {args.num_processes}")
  if args.devices_per_process < 1:
    parser.error(f"--devices_per_process must be at least 1; got {args.devices_per_process}")
  if not command:
    parser.error("no command after --")
  return args, command


def main(argv: list[str]) -> int:
  args, command = parse(argv)
  n = args.num_processes
  logdir = os.path.abspath(args.logdir or tempfile.mkdtemp(prefix="real_jax_multihost_"))
  os.makedirs(logdir, exist_ok=True)
  address = f"127.0.0.1:{args.port or free_port()}"
  flags = os.environ.get("XLA_FLAGS", "").split()
  flags = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", XLA_FLAGS=" ".join(
      [*flags, f"--xla_force_host_platform_device_count={args.devices_per_process}"]))
  logs = [os.path.join(logdir, f"process{i}.log") for i in range(n)]
  procs = []
  for i in range(n):
    argv_i = [*command, f"--coordinator_address={address}", f"--num_processes={n}",
              f"--process_id={i}"]
    out = open(logs[i], "w")
    procs.append((subprocess.Popen(argv_i, stdout=out, stderr=subprocess.STDOUT, env=env), out))
  print(f"launched {n} process(es) x {args.devices_per_process} CPU device(s), coordinator "
        f"{address}; logs in {logdir}", flush=True)

  try:
    return _wait(args, procs, logs, n)
  finally:  # Ctrl-C, or the launcher itself failing: leave no process behind
    for p, out in procs:
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()
      out.close()


def _wait(args, procs, logs, n) -> int:
  shown = 0
  start = time.monotonic()
  first_failure: tuple[int, int] | None = None  # (process, exit code)
  failed_at = None

  def show_lead():
    nonlocal shown
    try:
      with open(logs[0], errors="replace") as f:
        f.seek(shown)
        text = f.read()
        shown = f.tell()
    except OSError:
      return
    if text:
      sys.stdout.write(text)
      sys.stdout.flush()

  def kill_all():
    for p, _ in procs:
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    for p, _ in procs:
      p.wait()

  def report(header: str):
    print(f"\n{header}", flush=True)
    for i, path in enumerate(logs):
      code = procs[i][0].returncode
      print(f"--- process {i} (exit code {code}), last {TAIL_LINES} lines of {path}:")
      print(tail(path), flush=True)

  while True:
    show_lead()
    codes = [p.poll() for p, _ in procs]
    for i, code in enumerate(codes):
      if code not in (None, 0) and first_failure is None:
        first_failure, failed_at = (i, code), time.monotonic()
    if all(c is not None for c in codes):
      break
    now = time.monotonic()
    if now - start > args.timeout:
      kill_all()
      show_lead()
      report(f"TIMEOUT: the run outlasted {args.timeout:.0f}s; every process was killed.")
      return TIMEOUT_EXIT
    if failed_at is not None and now - failed_at > args.grace:
      kill_all()
      break
    time.sleep(0.2)
  show_lead()
  if first_failure is None:
    print(f"all {n} process(es) finished in {time.monotonic() - start:.1f}s", flush=True)
    return 0
  i, code = first_failure
  report(f"FAILED: process {i} exited with code {code} first.")
  return code if code > 0 else 1  # killed by a signal: a plain failure


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
