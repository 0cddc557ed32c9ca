"""Random `[B, G, T]` batches with every kind of group the losses must handle."""

from __future__ import annotations

import numpy as np

GROUP_KINDS = ("mixed", "all_correct", "all_wrong", "padded_rollouts", "empty")


def random_batch(seed: int, *, B: int = 6, G: int = 5, T: int = 7,
                 dtype=np.float64, kinds=GROUP_KINDS, score_scale: float = 0.5,
                 garbage=np.nan):
  """Returns (logp, old_logp, mask, rewards) as NumPy arrays.

  Group b has kind `kinds[b % len(kinds)]`. Response lengths vary in [1, T];
  masked positions of `logp` hold `garbage` (NaN by default) and those of
  `old_logp` hold -inf, to prove they are never read. `padded_rollouts`
  groups have two all-zero mask rows and a mixed remainder; `empty` groups have no rollout at all.
  """
  rng = np.random.default_rng(seed)
  old = rng.normal(-1.0, 0.5, size=(B, G, T))
  logp = old + score_scale * rng.normal(size=(B, G, T))
  lengths = rng.integers(1, T + 1, size=(B, G))
  mask = np.arange(T)[None, None, :] < lengths[..., None]
  rewards = np.zeros((B, G))
  for b in range(B):
    kind = kinds[b % len(kinds)]
    if kind == "all_correct":
      rewards[b] = 1
    elif kind == "all_wrong":
      rewards[b] = 0
    else:
      rewards[b] = rng.permutation(np.arange(G) % 2)
    if kind == "padded_rollouts":
      mask[b, G - 2:] = False
      rewards[b, :G - 2] = rng.permutation(np.arange(G - 2) % 2)
      rewards[b, G - 2:] = rng.integers(0, 2, size=2)  # ignored: absent
    if kind == "empty":
      mask[b] = False
  logp = np.where(mask, logp, garbage)
  old = np.where(mask, old, -np.inf)
  return (logp.astype(dtype), old.astype(dtype), mask, rewards.astype(dtype))
