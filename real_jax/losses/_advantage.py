"""The scaffold every advantage-weighted objective shares.

`advantage_objective` turns a per-group token loss (`[G, T]`, `jax.vmap`-ed over
the `B` groups) into a batched objective: the input checks (`check_common`),
the group advantages of any of `ADVANTAGE_ESTIMATORS`, verl's aggregation
modes (`aggregate`), the optional KL term (`kl_penalty`) and VAPO's positive
NLL (`positive_nll_loss`), and the diagnostics every such objective returns
(`AdvantageLossAux`). The clipped family (`_clipped`), the objectives since
the paper (`_policy_gradient`) and Clip-/KL-Cov (`_covariance`) are built on it.

Shape letters: see `real_jax.losses._common`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from real_jax.losses import _common

Array = jax.Array

AGG_MODES = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
    "bnpo",
)
KL_TYPES = ("k1", "k2", "k3", "low_var_kl")

# As verl: log-ratios are clamped before exp so that a stale or garbage score
# cannot overflow float32. Beyond the clamp the gradient is 0.
DEFAULT_MAX_LOG_RATIO = 20.0


class AdvantageLossAux(NamedTuple):
  """Diagnostics of an advantage-weighted objective.

  Attributes:
    scores: `[B, G]` sequence scores `sbar`.
    advantages: `[B, G]` the group advantages (0 for absent rollouts and for
      groups whose rewards are all equal).
    rollout_clip_fraction: `[B, G]` the share of each rollout's tokens that
      the objective clips (the clipped family and GMPO cut their gradient;
      CISPO clips the importance weight and keeps it; DPPO drops the tokens
      outside its trust region; Clip-/KL-Cov count their selected tokens);
      0 or 1 for GSPO; 0 for the objectives that clip nothing (GPG, DRO,
      SAPO, VESPO, TOPR).
    clip_fraction: scalar, the same share over all response tokens of the
      batch (verl's `pg_clipfrac`).
    kl: scalar, the KL penalty aggregated as the loss (0 without `ref_logp`).
  """
  scores: Array
  advantages: Array
  rollout_clip_fraction: Array
  clip_fraction: Array
  kl: Array


def check_agg_mode(loss_agg_mode: str) -> None:
  if loss_agg_mode not in AGG_MODES:
    raise ValueError(
        f"`loss_agg_mode` must be one of {', '.join(AGG_MODES)}; got {loss_agg_mode!r}.")


def aggregate(loss_mat: Array, mask: Array, loss_agg_mode: str, *,
              norm_length: float | None = None) -> Array:
  """Reduces a `[..., G, T]` token-loss matrix to a scalar, verl's way.

  - `token-mean`: sum over every response token / number of response tokens.
  - `seq-mean-token-mean`: mean over a rollout's tokens, then over rollouts.
  - `seq-mean-token-sum`: sum over a rollout's tokens, mean over rollouts.
  - `seq-mean-token-sum-norm`: sum over every response token / `norm_length`
    (Dr.GRPO's fixed horizon; default `T`, as verl's `loss_mask.shape[-1]`).
  - `bnpo`: TRL's name (`trl/trainer/grpo_config.py`, `loss_type="bnpo"`)
    for the token mean over the *local* batch, the one this call receives.
    Within one call it is `token-mean`, to the bit; the two part where a
    trainer splits a step: TRL's `dapo` divides every micro-batch by the
    token count of the whole accumulated batch, `bnpo` by its own. Each
    real_jax call is one optimizer minibatch, so here both are per-call.

  Rollouts with no response token (padding) count in no denominator.
  """
  check_agg_mode(loss_agg_mode)
  m = _common.as_bool_mask(mask)
  dtype = loss_mat.dtype
  token_loss = jnp.where(m, loss_mat, jnp.zeros((), dtype))
  seq_sum = jnp.sum(token_loss, axis=-1)
  seq_len = jnp.sum(m, axis=-1).astype(dtype)
  n_seq = jnp.sum(seq_len > 0).astype(dtype)
  if loss_agg_mode in ("token-mean", "bnpo"):
    return jnp.sum(seq_sum) / jnp.maximum(jnp.sum(seq_len), 1)
  if loss_agg_mode == "seq-mean-token-mean":
    return jnp.sum(seq_sum / jnp.maximum(seq_len, 1)) / jnp.maximum(n_seq, 1)
  if loss_agg_mode == "seq-mean-token-sum":
    return jnp.sum(seq_sum) / jnp.maximum(n_seq, 1)
  horizon = loss_mat.shape[-1] if norm_length is None else norm_length
  return jnp.sum(seq_sum) / jnp.asarray(horizon, dtype)


def kl_penalty(logp: Array, ref_logp: Array, kl_type: str) -> Array:
  """Per-token KL estimate to a reference policy (Schulman's k1, k2, k3).

  `k3`/`low_var_kl` is `exp(ref - logp) - (ref - logp) - 1`, with the log-ratio
  clamped to [-20, 20] and the result to [-10, 10] as in verl.
  """
  if kl_type == "k1":
    return logp - ref_logp
  if kl_type == "k2":
    return 0.5 * jnp.square(logp - ref_logp)
  if kl_type in ("k3", "low_var_kl"):
    log_ratio = jnp.clip(ref_logp - logp, -20.0, 20.0)
    return jnp.clip(jnp.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)
  raise ValueError(f"`kl_type` must be one of {', '.join(KL_TYPES)}; got {kl_type!r}.")


def check_common(logp, old_logp, mask, rewards, *, advantage, loss_agg_mode, beta,
                 ref_logp, kl_type, max_log_ratio, norm_length, positive_nll=0.0) -> None:
  """The input checks every advantage-based objective shares."""
  _common.check_batch(logp, old_logp, mask, rewards)
  _common.check_estimator(advantage)
  _common.check_positive("beta", beta, allow_zero=True)
  _common.check_positive("positive_nll", positive_nll, allow_zero=True)
  _common.check_positive("max_log_ratio", max_log_ratio)
  if norm_length is not None:
    _common.check_positive("norm_length", norm_length)
  check_agg_mode(loss_agg_mode)
  if kl_type not in KL_TYPES:
    raise ValueError(f"`kl_type` must be one of {', '.join(KL_TYPES)}; got {kl_type!r}.")
  if ref_logp is None:
    beta_value = _common.concrete_value(beta)
    if beta_value is None or float(beta_value) != 0.0:
      raise ValueError("`ref_logp` [B, G, T] is required when `beta` is not 0.")
  elif tuple(getattr(ref_logp, "shape", ())) != tuple(logp.shape):
    raise ValueError(
        f"`ref_logp` must have the shape of `logp` {tuple(logp.shape)}, got "
        f"{tuple(getattr(ref_logp, 'shape', ()))}.")


def positive_nll_loss(logp: Array, mask: Array, rewards: Array) -> Array:
  r"""VAPO's NLL on the correct rollouts: :math:`-\frac{1}{N^+}\sum_{r_k > 0}\sum_t \log\pi`.

  `N+` counts the response tokens of the rollouts with reward > 0; 0 when there
  is none (NeMo-RL's `positive_example_nll_weight`,
  `nemo_rl/algorithms/loss/loss_functions.py`).
  """
  m = _common.as_bool_mask(mask) & (rewards > 0)[..., None]
  dtype = logp.dtype
  total = jnp.sum(jnp.where(m, -logp, jnp.zeros((), dtype)))
  return total / jnp.maximum(jnp.sum(m), 1).astype(dtype)


def advantage_objective(group_fn, logp, old_logp, mask, rewards, *, advantage,
                        loss_agg_mode, beta, ref_logp, kl_type, max_log_ratio,
                        norm_length, positive_nll=0.0,
                        batch_stage=None) -> tuple[Array, AdvantageLossAux]:
  """Any per-group token loss as a batched objective.

  The advantages `[B, G]` come first, from the whole batch
  (`_common.batch_advantages`: REINFORCE++-baseline whitens across groups).
  `batch_stage(logp, old_logp, mask, advantages)`, when given, returns extra
  `[B, ...]` inputs that need the whole batch too (Clip-Cov's and KL-Cov's
  token selection). Then `group_fn(logp, old_logp, mask, advantages, *extra)
  -> (token_loss [G, T], clipped [G, T])` is vmapped over the groups; the
  token losses are aggregated with `loss_agg_mode`, plus `beta` times the KL
  to `ref_logp`, plus `positive_nll` times `positive_nll_loss`.
  """
  check_common(logp, old_logp, mask, rewards, advantage=advantage,
               loss_agg_mode=loss_agg_mode, beta=beta, ref_logp=ref_logp,
               kl_type=kl_type, max_log_ratio=max_log_ratio, norm_length=norm_length,
               positive_nll=positive_nll)
  m = _common.as_bool_mask(mask)
  dtype = logp.dtype
  adv = _common.batch_advantages(rewards, m, estimator=advantage).astype(dtype)
  extra = () if batch_stage is None else batch_stage(logp, old_logp, m, adv)
  token_loss, is_clipped = jax.vmap(group_fn)(logp, old_logp, m, adv, *extra)
  loss = aggregate(token_loss, m, loss_agg_mode, norm_length=norm_length)
  if not (isinstance(positive_nll, (int, float)) and positive_nll == 0):
    loss = loss + positive_nll * positive_nll_loss(logp, m, rewards)
  if ref_logp is None:
    kl = jnp.zeros((), dtype)
  else:
    safe = lambda x: jnp.where(m, x, jnp.zeros((), x.dtype))  # noqa: E731
    kl_mat = kl_penalty(safe(logp), safe(ref_logp).astype(dtype), kl_type)
    kl = aggregate(kl_mat, m, loss_agg_mode, norm_length=norm_length)
    loss = loss + beta * kl

  n_tok = jnp.sum(m, axis=-1).astype(dtype)
  n_clipped = jnp.sum(is_clipped, axis=-1).astype(dtype)
  aux = AdvantageLossAux(
      scores=_common.sequence_scores(logp, old_logp, m),
      advantages=adv,
      rollout_clip_fraction=n_clipped / jnp.maximum(n_tok, 1),
      clip_fraction=jnp.sum(n_clipped) / jnp.maximum(jnp.sum(n_tok), 1),
      kl=kl)
  return loss, aux
