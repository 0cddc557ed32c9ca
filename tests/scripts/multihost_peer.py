"""One process of a multi-process run that loses or stalls a peer on purpose.

  python tests/scripts/multihost_peer.py MODE --coordinator_address=... --num_processes=2 \
      --process_id=I [--collective_timeout=S]

MODE `lost`: process 1 exits with code 7 before the barrier; `stuck`: it
sleeps instead; `ok`: both reach it. Every process then waits at
`distributed.barrier("after the peer")` and, for `ok`, gathers a sharded
array. `tests/test_multihost.py` checks how each run ends.
"""

import os
import sys
import time

from absl import app
from absl import flags

from real_jax import distributed

_MULTI = distributed.define_flags()


def main(argv):
  mode = argv[1]
  distributed.initialize_from_flags(_MULTI)
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  print(f"process {jax.process_index()}: {distributed.describe()}", flush=True)
  if jax.process_index() == 1:
    if mode == "lost":
      os._exit(7)
    if mode == "stuck":
      time.sleep(3600)
  distributed.barrier("after the peer")
  value = distributed.broadcast_from_lead({"lead": jax.process_index()}, "who leads")
  gathered = distributed.allgather(jnp.arange(2) + 2 * jax.process_index(), "indices")
  print(f"process {jax.process_index()}: passed the barrier; lead {value['lead']}, "
        f"gathered {gathered.tolist()}", flush=True)


if __name__ == "__main__":
  del flags
  app.run(main, argv=sys.argv)
