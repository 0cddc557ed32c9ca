r"""Clip-Cov and KL-Cov: PPO that acts on the few tokens whose log-probability covaries most with their advantage.

Both select tokens from statistics of the whole batch, the centred product

.. math:: c_{k,t} = (A_k - \bar A)(\log\pi_{k,t} - \overline{\log\pi})

with both means over every response token of the batch (docs/derivations.md,
"Clip-Cov and KL-Cov"). The selection is the only non-local step: it runs
once per batch (`clip_cov_selection`, `kl_cov_selection`), and the per-group
token losses are then vmapped over the groups as for every other objective.

verl (`compute_policy_loss_clip_cov` and `_kl_cov` in
`verl/trainer/ppo/core_algos.py`, from PRIME-RL's Entropy-Mechanism-of-RL)
picks Clip-Cov's tokens at random among the candidates. real_jax keeps every
selection deterministic: the candidates with the largest covariance, ties to
the lower flat index `(b, k, t)` in row-major order. When the candidates are
no more than the count, both choose the same tokens.

Shape letters: see `real_jax.losses._common`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from real_jax.losses import _advantage
from real_jax.losses import _clipped
from real_jax.losses import _common

Array = jax.Array
AdvantageLossAux = _advantage.AdvantageLossAux
DEFAULT_MAX_LOG_RATIO = _advantage.DEFAULT_MAX_LOG_RATIO
# float32 rounds 0.0002 * 10000 just below 2; this relative allowance keeps
# floor(ratio * N) equal to the float64 count of verl's `int(ratio * N)`.
_COUNT_ALLOWANCE = 1e-6


def token_covariance(logp: Array, mask: Array, advantages: Array) -> Array:
  r"""`c = (A - mean A)(log pi - mean log pi)`, `[B, G, T]`, -inf off the response.

  Both means over the batch's response tokens; no gradient flows through it.
  """
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  n = jnp.maximum(jnp.sum(m), 1).astype(dtype)
  a = jnp.where(m, jnp.broadcast_to(advantages.astype(dtype)[..., None], m.shape), zero)
  lp = jnp.where(m, jax.lax.stop_gradient(logp), zero)
  cov = (a - jnp.sum(a) / n) * (lp - jnp.sum(lp) / n)
  return jnp.where(m, cov, -jnp.inf)


def selection_count(mask: Array, ratio: float) -> Array:
  """`max(floor(ratio * N), 1)` with `N` the batch's response tokens, as verl."""
  n = jnp.sum(_common.as_bool_mask(mask)).astype(jnp.float32)
  return jnp.maximum(jnp.floor(n * ratio * (1 + _COUNT_ALLOWANCE)), 1).astype(jnp.int32)


def max_selection_count(mask: Array, ratio) -> int:
  """A bound on `selection_count` known when tracing: the count of every slot."""
  r = _common.concrete_value(ratio)
  if r is None:  # a traced ratio: no bound tighter than every slot
    return int(mask.size)
  return int(min(max(int(mask.size * float(r) * (1 + _COUNT_ALLOWANCE)), 1), mask.size))


def top_tokens(key: Array, eligible: Array, count: Array, max_count: int) -> Array:
  """The `count` eligible entries with the largest `key`, ties to the lower flat index.

  `lax.top_k` returns equal keys lower index first, the rule a reader would
  apply by hand; `max_count` (static, >= `count`) is how many it looks at,
  so that a few tokens of a large batch cost no sort of the batch. Returns a
  bool array of `key`'s shape.
  """
  flat_key = jnp.where(eligible, key, -jnp.inf).reshape(-1)
  if max_count == 1:  # the usual case (2e-4 of a batch under 5,000 tokens); fast in float64 too
    index = jnp.argmax(flat_key)[None]
  else:
    _, index = jax.lax.top_k(flat_key, max_count)
  chosen = jnp.zeros(flat_key.shape, bool).at[index].set(jnp.arange(max_count) < count)
  return chosen.reshape(key.shape) & eligible


def clip_cov_selection(logp: Array, old_logp: Array, mask: Array, advantages: Array, *,
                       epsilon_low: float, epsilon_high: float, clip_cov_ratio: float,
                       clip_cov_lb: float, clip_cov_ub: float,
                       max_log_ratio: float = DEFAULT_MAX_LOG_RATIO) -> Array:
  """Clip-Cov's detached tokens, `[B, G, T]` bool.

  Candidates: response tokens PPO's clip leaves open whose covariance lies
  strictly inside `(clip_cov_lb, clip_cov_ub)`; of those, the
  `max(floor(clip_cov_ratio * N), 1)` with the largest covariance.
  """
  m = _common.as_bool_mask(mask)
  # PPO's clip (verl's `clip_by_origin`): its cut tokens are never candidates.
  ppo = functools.partial(_clipped.clipped_surrogate_group, epsilon_low=epsilon_low,
                          epsilon_high=epsilon_high, max_log_ratio=max_log_ratio)
  _, cut = jax.vmap(ppo)(jax.lax.stop_gradient(logp), old_logp, m, advantages)
  cov = token_covariance(logp, m, advantages)
  candidates = m & ~cut & (cov > clip_cov_lb) & (cov < clip_cov_ub)
  return top_tokens(cov, candidates, selection_count(m, clip_cov_ratio),
                    max_selection_count(m, clip_cov_ratio))


def kl_cov_selection(logp: Array, mask: Array, advantages: Array, *,
                     kl_cov_ratio: float) -> Array:
  """KL-Cov's penalised tokens, `[B, G, T]` bool: the `max(floor(kl_cov_ratio * N), 1)`
  response tokens with the largest covariance."""
  m = _common.as_bool_mask(mask)
  cov = token_covariance(logp, m, advantages)
  return top_tokens(cov, m, selection_count(m, kl_cov_ratio), max_selection_count(m, kl_cov_ratio))


def clip_cov_group(logp: Array, old_logp: Array, mask: Array, advantages: Array,
                   selected: Array, *, epsilon_low: float, epsilon_high: float,
                   max_log_ratio: float = DEFAULT_MAX_LOG_RATIO) -> tuple[Array, Array]:
  """Clip-Cov's token losses of one group: PPO's, and 0 on the `selected` tokens."""
  m = _common.as_bool_mask(mask)
  token_loss, cut = _clipped.clipped_surrogate_group(
      logp, old_logp, m, advantages, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
      max_log_ratio=max_log_ratio)
  return jnp.where(selected, jnp.zeros((), logp.dtype), token_loss), (cut | selected) & m


def kl_cov_group(logp: Array, old_logp: Array, mask: Array, advantages: Array,
                 selected: Array, *, ppo_kl_coef: float,
                 max_log_ratio: float = DEFAULT_MAX_LOG_RATIO) -> tuple[Array, Array]:
  r"""KL-Cov's token losses of one group: :math:`-A\rho`, plus `coef * |s|` on the `selected` tokens."""
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  zero = jnp.zeros((), dtype)
  s = jnp.where(m, logp - old_logp, zero)
  ratio = jnp.exp(jnp.clip(s, -max_log_ratio, max_log_ratio))
  token_loss = -advantages.astype(dtype)[:, None] * ratio
  # |s| as sg(sgn s) s: the same value, and torch's derivative sgn(0) = 0 at
  # s = 0, where JAX's own |s| has derivative 1.
  abs_s = jax.lax.stop_gradient(jnp.sign(s)) * s
  token_loss = token_loss + jnp.where(selected, ppo_kl_coef * abs_s, zero)
  return jnp.where(m, token_loss, zero), selected & m


def _check_ratio(name: str, value) -> None:
  _common.check_positive(name, value)
  v = _common.concrete_value(value)
  if v is not None and v > 1:
    raise ValueError(f"`{name}` must be a fraction of the tokens in (0, 1], got {float(v)}.")


def clip_cov(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
             epsilon_low: float = 0.2, epsilon_high: float = 0.2,
             clip_cov_ratio: float = 2e-4, clip_cov_lb: float = 1.0, clip_cov_ub: float = 5.0,
             advantage: str = "grpo", loss_agg_mode: str = "token-mean",
             beta: float = 0.0, ref_logp: Array | None = None, kl_type: str = "low_var_kl",
             max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
             norm_length: float | None = None,
             positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""Clip-Cov: PPO-clip with the gradient detached on the highest-covariance tokens.

  .. math::
     \ell_{k,t} = \max\big(-A_k\rho_{k,t},\,-A_k\,\mathrm{clip}(\rho_{k,t}, 1-\epsilon_{low},
                  1+\epsilon_{high})\big)\cdot\mathbb{1}[(k,t)\notin S]

  with `S` from `clip_cov_selection`: among the tokens PPO's clip leaves
  open and whose covariance lies in `(clip_cov_lb, clip_cov_ub)`, the
  `max(floor(clip_cov_ratio * N), 1)` of largest covariance. A selected
  token's loss and gradient are 0 (verl multiplies its loss by 0).

  Defaults as verl's (`clip_cov_ratio = 2e-4`, bounds `(1, 5)`, the actor's
  clip range 0.2, `token-mean`). verl draws `S` at random among the
  candidates; here it is the candidates of largest covariance, ties to the
  lower flat index, so that a loss is a function of its batch.

  References:
    Cui et al., "The Entropy Mechanism of Reinforcement Learning for
    Reasoning Language Models", arXiv 2505.22617 (2025).
  """
  _common.check_positive("epsilon_low", epsilon_low, allow_zero=True)
  _common.check_positive("epsilon_high", epsilon_high, allow_zero=True)
  _check_ratio("clip_cov_ratio", clip_cov_ratio)
  lb, ub = _common.concrete_value(clip_cov_lb), _common.concrete_value(clip_cov_ub)
  if lb is not None and ub is not None and not lb < ub:
    raise ValueError(f"`clip_cov_lb` must be below `clip_cov_ub`; got {float(lb)} >= {float(ub)}.")
  select = functools.partial(
      clip_cov_selection, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
      clip_cov_ratio=clip_cov_ratio, clip_cov_lb=clip_cov_lb, clip_cov_ub=clip_cov_ub,
      max_log_ratio=max_log_ratio)
  group_fn = functools.partial(clip_cov_group, epsilon_low=epsilon_low,
                               epsilon_high=epsilon_high, max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll,
      batch_stage=lambda lp, olp, m, adv: (select(lp, olp, m, adv),))


def kl_cov(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
           kl_cov_ratio: float = 2e-4, ppo_kl_coef: float = 1.0,
           advantage: str = "grpo", loss_agg_mode: str = "token-mean",
           beta: float = 0.0, ref_logp: Array | None = None, kl_type: str = "low_var_kl",
           max_log_ratio: float = DEFAULT_MAX_LOG_RATIO,
           norm_length: float | None = None,
           positive_nll: float = 0.0) -> tuple[Array, AdvantageLossAux]:
  r"""KL-Cov: the unclipped surrogate, with a KL penalty on the highest-covariance tokens.

  .. math::
     \ell_{k,t} = -A_k\rho_{k,t} + \mathbb{1}[(k,t)\in S]\;\kappa\,|s_{k,t}|

  with `S` the `max(floor(kl_cov_ratio * N), 1)` response tokens of largest
  covariance (`kl_cov_selection`) and `kappa = ppo_kl_coef`. There is no clip
  at all: the gradient w.r.t. the log-ratio is :math:`-A\rho`, plus
  :math:`\kappa\,\mathrm{sgn}(s)` on `S` (0 at `s = 0`, as autodiff of `|s|`).

  Defaults as verl's `compute_policy_loss_kl_cov` (`kl_cov_ratio = 2e-4`,
  `ppo_kl_coef = 1`, `token-mean`); torch's `topk` leaves ties unordered,
  here they go to the lower flat index.

  References:
    Cui et al., arXiv 2505.22617 (2025), as `clip_cov`.
  """
  _check_ratio("kl_cov_ratio", kl_cov_ratio)
  _common.check_positive("ppo_kl_coef", ppo_kl_coef, allow_zero=True)
  select = functools.partial(kl_cov_selection, kl_cov_ratio=kl_cov_ratio)
  group_fn = functools.partial(kl_cov_group, ppo_kl_coef=ppo_kl_coef,
                               max_log_ratio=max_log_ratio)
  return _advantage.advantage_objective(
      group_fn, logp, old_logp, mask, rewards, advantage=advantage,
      loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp, kl_type=kl_type,
      max_log_ratio=max_log_ratio, norm_length=norm_length, positive_nll=positive_nll,
      batch_stage=lambda lp, olp, m, adv: (select(lp, m, adv),))
