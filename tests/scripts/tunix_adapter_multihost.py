"""The Tunix adapter's loss and gradient on a mesh spanning processes, and on one device.

  python experiments/launch_local_multihost.py 2 --devices_per_process=2 -- \
      python tests/scripts/tunix_adapter_multihost.py

Each process computes the reference on its own first device, then the same
loss with parameters and rollouts sharded over every device of every
process (Tunix's fsdp x tp layout); process 0 prints both as `RESULT{json}`
for `tests/test_multihost.py`.
"""

import json

from absl import app

from real_jax import distributed

_MULTI = distributed.define_flags()


def main(argv):
  del argv
  distributed.initialize_from_flags(_MULTI)
  # pylint: disable=g-import-not-at-top
  from flax import nnx  # noqa: PLC0415
  import jax  # noqa: PLC0415
  from jax.sharding import Mesh  # noqa: PLC0415
  from jax.sharding import NamedSharding  # noqa: PLC0415
  from jax.sharding import PartitionSpec  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  import test_tunix as tt  # noqa: PLC0415

  loss, state, example = tt.sharding_case()

  # The reference: this process's first device alone.
  ref_loss, ref_grad = jax.jit(jax.value_and_grad(loss))(state, example)
  # Parameters by their fsdp/tp annotations, rollouts over fsdp: 6 rows per
  # process, so the second group of 4 spans both processes.
  mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("fsdp", "tp"))
  specs = nnx.get_partition_spec(state)
  host = jax.tree.map(np.asarray, (state, example))
  sharded_state = jax.device_put(host[0], jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec)))
  sharded_example = jax.tree.map(
      lambda x: jax.device_put(x, NamedSharding(mesh, PartitionSpec("fsdp"))), host[1])
  with distributed.collective("adapter loss and gradient over the mesh"), jax.set_mesh(mesh):
    got_loss, got_grad = jax.jit(jax.value_and_grad(loss))(sharded_state, sharded_example)
    jax.block_until_ready(got_grad)
  spans = {len({d.process_index for d in x.sharding.device_set})
           for x in jax.tree.leaves(sharded_state)}
  got_loss, got_grad = distributed.allgather((got_loss, got_grad), "adapter gradient")
  if distributed.is_lead():
    print("RESULT" + json.dumps({
        "processes": jax.process_count(), "devices": jax.device_count(),
        "loss": [float(ref_loss), float(got_loss)],
        "grad": [[np.asarray(a).ravel().tolist(), np.asarray(b).ravel().tolist()]
                 for a, b in zip(jax.tree.leaves(ref_grad), jax.tree.leaves(got_grad),
                                 strict=True)],
        "processes_per_parameter": sorted(spans)}), flush=True)


if __name__ == "__main__":
  app.run(main)
