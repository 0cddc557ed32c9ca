"""The derivation check's inputs: random sweep cases and probe groups.

A sweep case is a batch of `GROUPS_PER_CASE` groups (so the batch
normalisation across groups is exercised), each of up to `G_MAX` rollouts of
up to `T_MAX` tokens, with its own temperature and score scale, drawn by
NumPy (`make_cases`). A probe (`Curve`) moves one rollout's score along a
grid while the rest of its group stays fixed: the monotonicity grids and the
Figure 1 curves. `chunk_batches` lays both out in chunks of one shape, so
that every measurement goes through the same compiled programs.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

SIGNS = ("positive", "negative")
GROUPS_PER_CASE = 4
G_MIN, G_MAX = 2, 64
T_MAX = 4
TAU_RANGE = (0.05, 2.0)
SCORE_MAX = 20.0


def case_rng(seed: int, index: int) -> np.random.Generator:
  """The generator of chunk `index` of a sweep seeded `seed`: chunks are independent."""
  return np.random.default_rng((seed, index))


def make_cases(rng: np.random.Generator, n: int, dtype) -> dict[str, Array]:
  """`n` sweep cases: `logp, old_logp, mask: [n, 4, G_MAX, T_MAX]`, rewards, tau.

  Drawn by NumPy on the host and put on the default device: a case's values
  need no device, and `jax.random`'s threefry costs a compile per dtype and
  is slower per chunk on a CPU (docs/guide/performance.md).
  """
  dtype = np.dtype(dtype)
  shape = (n, GROUPS_PER_CASE, G_MAX)
  size = rng.integers(G_MIN, G_MAX + 1, shape[:2] + (1,))
  present = np.arange(G_MAX) < size
  present &= rng.random(shape, np.float32) > 0.1  # padding rollouts anywhere
  lengths = rng.integers(1, T_MAX + 1, shape)
  mask = (np.arange(T_MAX) < lengths[..., None]) & present[..., None]
  # Every mix: a per-group rate of correct answers, plus one-sided groups.
  rate = rng.random(shape[:2] + (1,))
  kind = rng.integers(0, 6, shape[:2] + (1,))
  correct = rng.random(shape, np.float32) < rate
  correct = np.where(kind == 0, True, np.where(kind == 1, False, correct))
  log_uniform = lambda lo, hi: np.exp(rng.uniform(math.log(lo), math.log(hi), n))  # noqa: E731
  tau = log_uniform(*TAU_RANGE)
  scale = log_uniform(0.01, SCORE_MAX)
  sbar = scale[:, None, None] * rng.uniform(-1.0, 1.0, shape)
  spread = 0.3 * np.minimum(scale, 1.0)[:, None, None, None]
  s = sbar[..., None] + spread * rng.standard_normal(shape + (T_MAX,), np.float32)
  s = np.clip(s, -SCORE_MAX + 0.1, SCORE_MAX - 0.1)
  old = -2.0 + 0.5 * rng.standard_normal(shape + (T_MAX,), np.float32)
  logp = np.where(mask, old + s, np.nan)  # garbage where masked, on purpose
  cases = dict(logp=logp, old_logp=old, rewards=correct, tau=tau)
  cases = {k: jnp.asarray(v.astype(dtype)) for k, v in cases.items()}
  return dict(cases, mask=jnp.asarray(mask))


@dataclasses.dataclass(frozen=True)
class Curve:
  """One probe rollout (index 0) moved along `grid` in a fixed group of 8.

  `others` are the scores of the 7 other one-token rollouts, `correct` their
  labels, `probe_correct` the probe's label.
  """
  grid: tuple
  others: tuple
  correct: tuple
  probe_correct: bool
  tau: float


def cases_needed(curves: list[Curve]) -> int:
  return sum(-(-len(c.grid) // GROUPS_PER_CASE) for c in curves)


def curves_batch(curves: list[Curve], n_cases: int, dtype) -> tuple[dict, list[tuple[int, int]]]:
  """Lays curves out as sweep cases; returns the batch and each curve's (first group, length).

  The 4 groups of a case share the case's tau, so a curve takes whole cases.
  """
  n_groups = n_cases * GROUPS_PER_CASE
  logp = np.full((n_groups, G_MAX, T_MAX), np.nan)
  old = np.zeros((n_groups, G_MAX, T_MAX))
  mask = np.zeros((n_groups, G_MAX, T_MAX), bool)
  rewards = np.zeros((n_groups, G_MAX))
  tau = np.ones(n_cases)
  spans, g = [], 0
  for c in curves:
    size = len(c.grid)
    padded = -(-size // GROUPS_PER_CASE) * GROUPS_PER_CASE
    if g + padded > n_groups:
      raise ValueError(f"`curves` need more than n_cases={n_cases} cases.")
    for i in range(padded):
      row = g + i
      logp[row, :8, 0] = (c.grid[min(i, size - 1)],) + tuple(c.others)
      mask[row, :8, 0] = True
      rewards[row, :8] = (float(c.probe_correct),) + tuple(map(float, c.correct))
    tau[g // GROUPS_PER_CASE:(g + padded) // GROUPS_PER_CASE] = c.tau
    spans.append((g, size))
    g += padded
  shape = (n_cases, GROUPS_PER_CASE)
  batch = dict(logp=logp.reshape(shape + logp.shape[1:]), old_logp=old.reshape(shape + old.shape[1:]),
               mask=mask.reshape(shape + mask.shape[1:]), rewards=rewards.reshape(shape + (G_MAX,)),
               tau=tau)
  return {k: jnp.asarray(v, dtype) if k != "mask" else jnp.asarray(v) for k, v in batch.items()}, spans


def batch_shape(chunk: int, dtype) -> dict[str, jax.ShapeDtypeStruct]:
  """The shapes of a batch from `chunk_batches`, to compile for before any exists."""
  dtype = jnp.dtype(dtype)
  tokens = (chunk, GROUPS_PER_CASE, G_MAX, T_MAX)
  return dict(logp=jax.ShapeDtypeStruct(tokens, dtype), old_logp=jax.ShapeDtypeStruct(tokens, dtype),
              mask=jax.ShapeDtypeStruct(tokens, jnp.bool_),
              rewards=jax.ShapeDtypeStruct(tokens[:3], dtype), tau=jax.ShapeDtypeStruct((chunk,), dtype))


def chunk_batches(seed: int, n_chunks: int, chunk: int, dtype, probes: list[Curve], *,
                  probes_first: bool = False
                  ) -> tuple[list[tuple[int, int]], Iterator[tuple[int, bool, dict]]]:
  """The batches of a check, every one `chunk` cases wide.

  `n_chunks` chunks of random cases (chunk `c` from `case_rng(seed, c)`),
  indexed `0 .. n_chunks - 1`, then the `probes` curves laid out in as many
  chunks as they need, indexed on from `n_chunks` (yielded before the random
  ones with `probes_first`): one shape throughout, so each objective and
  dtype compiles one program.

  Returns:
    Each probe curve's `(first group, length)` in the probe chunks joined
    end to end, and an iterator of `(index, is_probe, batch)`.
  """
  n_probe = math.ceil(cases_needed(probes) / chunk)
  probe_batch, spans = curves_batch(probes, n_probe * chunk, dtype)
  order = list(range(n_chunks + n_probe))
  if probes_first:
    order = order[n_chunks:] + order[:n_chunks]

  def batches():
    for c in order:
      if c < n_chunks:
        yield c, False, make_cases(case_rng(seed, c), chunk, dtype)
      else:
        piece = slice((c - n_chunks) * chunk, (c - n_chunks + 1) * chunk)
        yield c, True, {k: v[piece] for k, v in probe_batch.items()}
  return spans, batches()


GRID_CONFIGS, GRID_POINTS = 16, 201


def monotonic_curves(seed: int = 0) -> list[Curve]:
  """Random mixed groups, tau in [0.05, 2]; one positive and one negative probe each."""
  rng = np.random.default_rng(seed)
  grid = tuple(np.linspace(-SCORE_MAX + 0.1, SCORE_MAX - 0.1, GRID_POINTS))
  curves = []
  for i in range(GRID_CONFIGS):
    others = tuple(rng.uniform(-3.0, 3.0, 7))
    correct = (True, False) + tuple(rng.uniform(size=5) < 0.5)  # always mixed
    tau = float(np.exp(rng.uniform(math.log(TAU_RANGE[0]), math.log(TAU_RANGE[1]))))
    # One positive probe in four is its group's only correct rollout, the one
    # case where pass@k gives credit.
    sole = (False,) * 7 if i % 4 == 3 else correct
    curves.append(Curve(grid, others, sole, True, tau))
    curves.append(Curve(grid, others, correct, False, tau))
  return curves


# Figure 1 of the paper: a group of 8 split 4/4, on-policy apart from the
# probe, so that C+ = C- = 4; tau = 0.5; GRPO with |A| = 1, eps = 0.2.
FIG1_TAU = 0.5
FIG1_S = (-1.5, 1.5)
FIG1_POINTS = 401


def figure1_probes() -> dict[str, Curve]:
  grid = tuple(np.linspace(*FIG1_S, FIG1_POINTS))
  return {sign: Curve(grid, (0.0,) * 7, (probe,) * 3 + (not probe,) * 4, probe, FIG1_TAU)
          for sign, probe in (("positive", True), ("negative", False))}
