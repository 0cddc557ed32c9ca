"""Label-based objectives: rewards are class labels, sequence scores are logits.

REAL, GRAD, BCE and the product-style loss (docs/derivations.md, section 5).
Each is written for one group of `G` rollouts as a function of the sequence
scores `sbar: [G]` and the label masks, returning `(loss_sum, count)`; the
batched function `jax.vmap`s it over `B` groups and divides the summed losses
by the summed counts, so the normalisation is global over the batch.

Shape letters: see `real_jax.losses._common`.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from real_jax.losses import _common

Array = jax.Array


class LabelLossAux(NamedTuple):
  """Diagnostics of a label-based objective.

  Attributes:
    scores: `[B, G]` sequence scores `sbar` (the logits).
    positive: `[B, G]` bool, present rollouts with reward 1.
    negative: `[B, G]` bool, present rollouts with reward 0.
    valid_group: `[B]` bool, groups that contribute to the loss.
    group_loss: `[B]` each group's summed loss before batch normalisation
      (0 for groups that do not contribute).
    normaliser: scalar, what the summed group losses are divided by.
  """
  scores: Array
  positive: Array
  negative: Array
  valid_group: Array
  group_loss: Array
  normaliser: Array


def _log1p_sum_exp(z: Array) -> Array:
  """`log(1 + sum(exp(z)))` = `logsumexp([z, 0])`: the anchor logit at 0."""
  return jax.nn.logsumexp(jnp.concatenate([z, jnp.zeros((1,), z.dtype)]))


def _masked(values: Array, where: Array) -> Array:
  return jnp.where(where, values, -jnp.inf)


def _nonempty(where: Array) -> Array:
  # A logsumexp over an empty set is -inf and its gradient NaN, which would
  # leak through the final `jnp.where` of a discarded group. Discarded groups
  # therefore reduce over every entry instead: finite, and multiplied by 0.
  return where | ~jnp.any(where)


def real_group(scores: Array, positive: Array, negative: Array, *,
               tau: float | Array) -> tuple[Array, Array]:
  r"""REAL loss of one group.

  .. math::
     L = \log\Big(1 + \sum_{i\in O^+} e^{-\bar s_i/\tau}\Big)
       + \log\Big(1 + \sum_{j\in O^-} e^{\bar s_j/\tau}\Big)

  Args:
    scores: `[G]` sequence scores.
    positive: `[G]` bool, rollouts labelled correct.
    negative: `[G]` bool, rollouts labelled wrong (absent rollouts are neither).
    tau: temperature, > 0.

  Returns:
    `(loss, count)`: the loss (0 unless the group has at least one positive and
    one negative) and 1 if the group holds any rollout (it counts in the batch
    denominator, degenerate or not), else 0.
  """
  valid = jnp.any(positive) & jnp.any(negative)
  loss = (_log1p_sum_exp(_masked(-scores / tau, positive))
          + _log1p_sum_exp(_masked(scores / tau, negative)))
  count = jnp.any(positive | negative).astype(scores.dtype)
  return jnp.where(valid, loss, jnp.zeros((), scores.dtype)), count


def grad_group(scores: Array, positive: Array, negative: Array, *,
               tau: float | Array) -> tuple[Array, Array]:
  r"""GRAD loss of one group: REAL's positive term alone.

  .. math:: L = \log\Big(1 + \sum_{i\in O^+} e^{-\bar s_i/\tau}\Big)

  Same validity rule and `count` as `real_group`; negatives get no gradient.
  """
  valid = jnp.any(positive) & jnp.any(negative)
  loss = _log1p_sum_exp(_masked(-scores / tau, positive))
  count = jnp.any(positive | negative).astype(scores.dtype)
  return jnp.where(valid, loss, jnp.zeros((), scores.dtype)), count


def real_product_group(scores: Array, positive: Array, negative: Array, *,
                       tau: float | Array) -> tuple[Array, Array]:
  r"""Product-style (circle-loss) objective of one group, with no anchor.

  .. math::
     L = \mathrm{softplus}\Big(\mathrm{LSE}_{j\in O^-}(\bar s_j/\tau)
                              + \mathrm{LSE}_{i\in O^+}(-\bar s_i/\tau)\Big)
       = \log\Big(1 + \sum_{i\in O^+}\sum_{j\in O^-} e^{(\bar s_j - \bar s_i)/\tau}\Big)

  Same validity rule and `count` as `real_group`.
  """
  valid = jnp.any(positive) & jnp.any(negative)
  lse_neg = jax.nn.logsumexp(_masked(scores / tau, _nonempty(negative)))
  lse_pos = jax.nn.logsumexp(_masked(-scores / tau, _nonempty(positive)))
  loss = jax.nn.softplus(lse_neg + lse_pos)
  count = jnp.any(positive | negative).astype(scores.dtype)
  return jnp.where(valid, loss, jnp.zeros((), scores.dtype)), count


def bce_group(scores: Array, positive: Array, negative: Array, *,
              tau: float | Array) -> tuple[Array, Array]:
  r"""Binary cross-entropy of one group, logits `sbar / tau`.

  .. math::
     L = \sum_{i\in O^+} \mathrm{softplus}(-\bar s_i/\tau)
       + \sum_{j\in O^-} \mathrm{softplus}(\bar s_j/\tau)

  Only groups whose rewards are not all equal count (as the official code).

  Returns:
    `(loss_sum, count)`: the summed per-rollout losses and the number of
    rollouts they sum over (0 for a group that does not count); the batch loss
    is the mean over all counted rollouts.
  """
  valid = jnp.any(positive) & jnp.any(negative)
  zero = jnp.zeros((), scores.dtype)
  per_rollout = jnp.where(positive, jax.nn.softplus(-scores / tau),
                          jnp.where(negative, jax.nn.softplus(scores / tau), zero))
  count = jnp.sum(positive | negative).astype(scores.dtype)
  return (jnp.where(valid, jnp.sum(per_rollout), zero),
          jnp.where(valid, count, zero))


GroupFn = Callable[..., tuple[Array, Array]]


def label_objective(group_fn: GroupFn, logp: Array, old_logp: Array,
                    mask: Array, rewards: Array, tau: float | Array
                    ) -> tuple[Array, LabelLossAux]:
  """A label-based objective on a `[B, G, T]` batch from its one-group loss.

  `group_fn(scores [G], positive [G], negative [G], *, tau) -> (loss, count)`
  as `real_group`; the group losses are summed and divided by the summed
  counts. REAL, GRAD, BCE and the product-style loss are this with their own
  group functions; a label objective of yours can be too.
  """
  _common.check_batch(logp, old_logp, mask, rewards)
  _common.check_positive("tau", tau)
  _common.check_binary_rewards(rewards, mask)
  m = _common.as_bool_mask(mask)
  scores = _common.sequence_scores(logp, old_logp, m)
  present = jnp.any(m, axis=-1)
  # Under jit the rewards cannot be checked; a reward above 1/2 counts as 1.
  correct = rewards > 0.5
  positive = present & correct
  negative = present & ~correct
  group_loss, group_count = jax.vmap(functools.partial(group_fn, tau=tau))(
      scores, positive, negative)
  normaliser = jnp.sum(group_count)
  loss = jnp.sum(group_loss) / jnp.maximum(normaliser, 1)
  valid = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
  return loss, LabelLossAux(scores, positive, negative, valid, group_loss, normaliser)


def real(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         tau: float | Array = 0.5) -> tuple[Array, LabelLossAux]:
  r"""REAL: rewards as labels, with anchor logits at 0 (docs/derivations.md, section 5).

  .. math::
     \mathcal L = \frac{1}{B}\sum_{b\ \mathrm{mixed}}
       \log\Big(1 + \sum_{i\in O^+_b} e^{-\bar s_i/\tau}\Big)
     + \log\Big(1 + \sum_{j\in O^-_b} e^{\bar s_j/\tau}\Big)

  `B` counts the groups holding at least one rollout; groups that are not
  mixed (all correct or all wrong) add 0 to the sum.

  Args:
    logp: `[B, G, T]` log-probabilities of the sampled tokens, current policy.
    old_logp: `[B, G, T]` the same under the sampling policy.
    mask: `[B, G, T]`, 1 on response tokens; an all-zero row is a padding rollout.
    rewards: `[B, G]` 0/1 verifiable rewards.
    tau: temperature, > 0 (the paper uses 0.5).

  Returns:
    `(loss, aux)`: a scalar and a `LabelLossAux`.

  References:
    Zhai et al., "Rewards as Labels: Revisiting RLVR from a Classification
    Perspective", arXiv 2602.05630 (2026).

  Example:
    >>> import jax.numpy as jnp
    >>> z = jnp.zeros((1, 2, 3))
    >>> loss, aux = real(z, z, jnp.ones((1, 2, 3)), jnp.array([[1.0, 0.0]]))
    >>> round(float(loss), 6)  # on-policy: 2 log 2
    1.386294
  """
  return label_objective(real_group, logp, old_logp, mask, rewards, tau)


def grad(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
         tau: float | Array = 0.5) -> tuple[Array, LabelLossAux]:
  r"""GRAD: the positives-only classifier, REAL without its negative term.

  .. math::
     \mathcal L = \frac{1}{B}\sum_{b\ \mathrm{mixed}}
       \log\Big(1 + \sum_{i\in O^+_b} e^{-\bar s_i/\tau}\Big)

  Arguments, returns and normalisation as `real`. Negatives get gradient 0.
  """
  return label_objective(grad_group, logp, old_logp, mask, rewards, tau)


def real_product(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
                 tau: float | Array = 0.5) -> tuple[Array, LabelLossAux]:
  r"""Product-style REAL (official `compute_policy_loss_real_product_style`).

  .. math::
     \mathcal L = \frac{1}{B}\sum_{b\ \mathrm{mixed}} \mathrm{softplus}\Big(
       \mathrm{LSE}_{j\in O^-_b}(\bar s_j/\tau) + \mathrm{LSE}_{i\in O^+_b}(-\bar s_i/\tau)\Big)

  A circle-loss form with no anchor: invariant to a common shift of a group's
  scores. Arguments, returns and normalisation as `real`.
  """
  return label_objective(real_product_group, logp, old_logp, mask, rewards, tau)


def bce(logp: Array, old_logp: Array, mask: Array, rewards: Array, *,
        tau: float | Array = 0.5) -> tuple[Array, LabelLossAux]:
  r"""Vanilla binary cross-entropy on logits `sbar / tau` (official `compute_policy_loss_bce`).

  .. math::
     \mathcal L = \frac{1}{N}\sum_{k} \big[r_k\,\mathrm{softplus}(-\bar s_k/\tau)
        + (1 - r_k)\,\mathrm{softplus}(\bar s_k/\tau)\big]

  averaged over the `N` present rollouts of the groups whose rewards are not
  all equal. Its weights are REAL's with `C+ = C- = 1`, divided by `N`.
  Arguments and returns as `real`; `aux.normaliser` is `N`.
  """
  return label_objective(bce_group, logp, old_logp, mask, rewards, tau)
