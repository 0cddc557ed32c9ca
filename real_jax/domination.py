"""Domination: how much of a group's negative gradient its largest negative carries.

One definition, shared by the gradient analysis (over random groups) and the
trainer's metrics (`neg_top_share`, `neg_dominated_fraction`): over a group
with at least two members, the share `max |w| / sum |w|` of the members'
per-rollout gradient weights. A group is *dominated* when that share exceeds
1/2 by more than rounding (`DOMINATION_RTOL`): one wrong rollout outweighs all
the others together. Two equal weights give a share of exactly 1/2 in exact
arithmetic, and float rounding of their sum must not decide that one of them
dominates (on-policy REAL gives every wrong rollout of a group the same weight).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["DOMINATION_RTOL", "dominated", "top_share"]

# Far above float32's rounding of a share of a few terms (about 1e-7), far
# below any share that means domination.
DOMINATION_RTOL = 1e-4


def top_share(mass: jax.Array, members: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per group (last axis), the share of `|mass|` over `members` carried by the largest.

  Args:
    mass: `[..., G]` per-rollout gradient weights (their magnitude is used).
    members: `[..., G]` bool, the rollouts counted (e.g. the wrong ones).

  Returns:
    `(share, counted)`, each `[...]`: the share (0 where not counted) and
    whether the group has >= 2 members with nonzero total mass.

  >>> share, counted = top_share(jnp.array([[3.0, 1.0, 5.0]]), jnp.array([[True, True, False]]))
  >>> float(share[0]), bool(counted[0])
  (0.75, True)
  """
  mass = jnp.where(members, jnp.abs(mass), 0.0)
  total = jnp.sum(mass, axis=-1)
  counted = (jnp.sum(members, axis=-1) >= 2) & (total > 0)
  share = jnp.where(counted, jnp.max(mass, axis=-1) / jnp.where(counted, total, 1.0), 0.0)
  return share, counted


def dominated(share: jax.Array) -> jax.Array:
  """Whether a group's `top_share` exceeds 1/2 by more than rounding.

  >>> bool(dominated(jnp.float32(0.5000001))), bool(dominated(jnp.float32(0.6)))
  (False, True)
  """
  return share > 0.5 * (1.0 + DOMINATION_RTOL)
