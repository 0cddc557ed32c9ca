"""The parts of `real_jax.integrations.tunix` that need Tunix itself.

Imported by that module on the first use of one of its Tunix-facing names;
importing it registers every objective and the two estimators in Tunix's
function registry (see `real_jax.integrations.tunix`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

try:
  from tunix.rl import algo_core as _tunix_algo_core  # registers "grpo" first
  from tunix.rl import common as _tunix_common
  from tunix.rl import function_registry as _tunix_registry
  from tunix.rl.grpo import grpo_learner as _tunix_grpo
except ImportError as e:  # pragma: no cover - depends on the environment
  raise ImportError(
      "real_jax.integrations.tunix needs Tunix for this: install the extra with "
      "`pip install -e '.[tunix]'` (google-tunix).") from e

from real_jax import losses as rj_losses
from real_jax.integrations._adapter import DEFAULT_TAU
from real_jax.integrations._adapter import LABEL_ESTIMATOR
from real_jax.integrations._adapter import OBJECTIVES
from real_jax.integrations._adapter import PREFIX
from real_jax.integrations._adapter import REGISTERED
from real_jax.integrations._adapter import REWARD_ESTIMATOR
from real_jax.integrations._adapter import _masked_mean
from real_jax.integrations._adapter import advantage_diagnostics
from real_jax.integrations._adapter import advantage_loss
from real_jax.integrations._adapter import binary_labels
from real_jax.integrations._adapter import diagnostics
from real_jax.integrations._adapter import label_loss
from real_jax.integrations._adapter import raw_rewards
from real_jax.integrations._adapter import takes_tau
from real_jax.integrations._adapter import tunix_name

__all__ = ["LabelGRPOConfig", "RealJaxGRPOConfig", "policy_loss", "register",
           "register_objective"]


@dataclasses.dataclass(kw_only=True)
class LabelGRPOConfig(_tunix_grpo.GRPOConfig):
  """`GRPOConfig` with the paper's defaults for the label-based objectives.

  Attributes:
    policy_loss_fn: one of `OBJECTIVES`, or `real_jax_<name>` of a label-based
      loss you registered. Default `real`.
    advantage_estimator: `binary_labels` (0/1 rewards, checked).
    beta: KL coefficient; the paper trains without KL. Default 0.
    tau: the objectives' temperature (> 0). Default 0.5, as in the paper.

  `loss_agg_mode`, `epsilon` and `epsilon_high` do not enter the label-based
  objectives, which are normalised per group (docs/derivations.md); they still
  govern the KL term when `beta > 0`.
  """

  policy_loss_fn: str = "real"
  advantage_estimator: str = LABEL_ESTIMATOR
  beta: float = 0.0
  tau: float = DEFAULT_TAU

  def __post_init__(self):
    super().__post_init__()
    try:
      name = tunix_name(self.policy_loss_fn)
    except ValueError:
      name = None
    if name is None or not takes_tau(name):
      raise ValueError(
          f"`policy_loss_fn` must be one of {OBJECTIVES} (or real_jax_<name> of a label-based "
          f"loss you registered) for LabelGRPOConfig; got {self.policy_loss_fn!r}. Use "
          "Tunix's GRPOConfig for 'grpo', RealJaxGRPOConfig for real_jax's advantage-weighted "
          "objectives.")
    if name not in OBJECTIVES:
      register_objective(name)
    if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) \
        or self.tau <= 0:
      raise ValueError(f"`tau` must be a finite number > 0; got {self.tau!r}.")


@dataclasses.dataclass(kw_only=True)
class RealJaxGRPOConfig(_tunix_grpo.GRPOConfig):
  """`GRPOConfig` for real_jax's advantage-weighted objectives through Tunix.

  Attributes:
    policy_loss_fn: `real_jax_<name>` for any of
      `real_jax.losses.ADVANTAGE_LOSSES` (e.g. `real_jax_grpo`,
      `real_jax_dapo`, `real_jax_gspo`, `real_jax_cispo`). Default
      `real_jax_grpo`.
    advantage_estimator: `real_jax_rewards`: the rewards reach the loss
      unchanged and the loss computes its group advantages itself.
    beta: KL coefficient (Tunix's KL term). Default 0.
    loss_kwargs: hyperparameters of the real_jax loss (e.g.
      `{"clip_ratio_c": 3.0}` or `{"advantage": "rloo"}`); the loss's own
      defaults otherwise. Tunix's `epsilon`, `epsilon_high` and
      `loss_agg_mode` fields do not reach it (DAPO keeps its 0.28 and
      `token-mean`); pass them here to change them, in real_jax's names.
  """

  policy_loss_fn: str = PREFIX + "grpo"
  advantage_estimator: str = REWARD_ESTIMATOR
  beta: float = 0.0
  loss_kwargs: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    super().__post_init__()
    name = tunix_name(self.policy_loss_fn)
    if takes_tau(name):
      raise ValueError(f"`policy_loss_fn` {self.policy_loss_fn!r} is label-based: use "
                       "LabelGRPOConfig for it. RealJaxGRPOConfig takes real_jax_<name> for "
                       f"the advantage-weighted ones ({', '.join(rj_losses.ADVANTAGE_LOSSES)}, "
                       "or one you registered).")
    register_objective(name)
    if self.advantage_estimator != REWARD_ESTIMATOR:
      raise ValueError(
          f"`advantage_estimator` must be {REWARD_ESTIMATOR!r}: real_jax's losses compute "
          "their group advantages from the rewards (choose the estimator with "
          f"loss_kwargs={{'advantage': 'rloo'}}); got {self.advantage_estimator!r}.")
    rj_losses.check_hyperparameters(name, self.loss_kwargs, what="`loss_kwargs`")


def policy_loss(model: nnx.Module, train_example: Any, algo_config: Any,
                pad_id: int, eos_id: int, *, objective: str,
                **kwargs: Any) -> tuple[jax.Array, dict[str, Any]]:
  """A Tunix policy loss (`function_registry` signature) for `objective`."""
  del kwargs
  if getattr(train_example, "segment_ids", None) is not None:
    raise ValueError(
        f"The {objective!r} policy loss does not support sequence packing "
        "(segment_ids): packed rows no longer form rollout groups.")
  completion_mask = train_example.completion_mask
  graphdef, state = nnx.split(model)
  per_token_logps, logits = _tunix_common.compute_per_token_logps(
      graphdef,
      state,
      prompt_tokens=train_example.prompt_ids,
      completion_tokens=train_example.completion_ids,
      pad_id=pad_id,
      eos_id=eos_id,
      stop_gradient=False,
      return_logits=True,
      temperature=getattr(algo_config, "temperature", 1.0),
  )
  per_token_logps = per_token_logps.astype(jnp.float32)
  if train_example.old_per_token_logps is None:
    # One update per batch (num_iterations=1): the sampling policy is the
    # current one, so every score is 0 in value but not in gradient.
    old_per_token_logps = jax.lax.stop_gradient(per_token_logps)
  else:
    old_per_token_logps = train_example.old_per_token_logps.astype(jnp.float32)

  if takes_tau(objective):
    loss, label_aux = label_loss(
        objective, per_token_logps, old_per_token_logps, completion_mask,
        jnp.asarray(train_example.advantages, jnp.float32),
        num_generations=algo_config.num_generations,
        tau=getattr(algo_config, "tau", DEFAULT_TAU))
    # Label-based objectives have no ratio clipping.
    clipfrac = jnp.float32(0.0)
    extra = diagnostics(label_aux) if hasattr(label_aux, "valid_group") else {}
  else:
    loss, adv_aux = advantage_loss(
        objective, per_token_logps, old_per_token_logps, completion_mask,
        jnp.asarray(train_example.advantages, jnp.float32),
        num_generations=algo_config.num_generations,
        loss_kwargs=getattr(algo_config, "loss_kwargs", None))
    # A registered objective's aux may be anything, or None.
    clipfrac = jnp.asarray(getattr(adv_aux, "clip_fraction", 0.0), jnp.float32)
    extra = advantage_diagnostics(adv_aux) if hasattr(adv_aux, "advantages") else {}

  aux: dict[str, Any] = {
      "kl": jnp.float32(0.0),
      "kl_loss": jnp.float32(0.0),
      "pg_loss": loss,
      "pg_clipfrac": clipfrac,
      **extra,
  }
  if train_example.ref_per_token_logps is not None:
    kl = _tunix_common.compute_kl_divergence(
        per_token_logps, train_example.ref_per_token_logps,
        algo_config.kl_loss_mode,
        clamp_value=getattr(algo_config, "kl_clamp_value", None))
    aux["kl"] = _masked_mean(kl, completion_mask).astype(jnp.float32)
    kl_loss = _tunix_common.aggregate_loss(kl, completion_mask,
                                           algo_config.loss_agg_mode)
    aux["kl_loss"] = kl_loss
    if algo_config.beta:
      loss = loss + algo_config.beta * kl_loss
  entropy = _tunix_algo_core.compute_entropy_from_logits(logits)
  aux["entropy"] = _tunix_common.aggregate_loss(entropy, completion_mask,
                                                algo_config.loss_agg_mode)
  return loss, aux


def register_objective(name: str, registered: str | None = None) -> str:
  """Registers the real_jax loss `name` (a registered one included) in Tunix as
  `registered` (default `real_jax_<name>`), idempotently; returns that name."""
  registered = PREFIX + name if registered is None else registered
  if not _is_ours(_registered("policy_loss_fn", registered), name):
    _tunix_registry.register_policy_loss_fn(registered)(
        functools.partial(policy_loss, objective=name))
  return registered


def register() -> None:
  """Register the objectives and the two estimators (idempotent)."""
  for name in OBJECTIVES:  # the label-based ones keep their bare names too
    register_objective(name, name)
  for name in REGISTERED.values():
    register_objective(name)
  for estimator, fn in ((LABEL_ESTIMATOR, binary_labels), (REWARD_ESTIMATOR, raw_rewards)):
    if _registered("advantage_estimator", estimator) is not fn:
      _tunix_registry.register_advantage_estimator(estimator)(fn)


def _registered(category: str, name: str) -> Any:
  try:
    return _tunix_registry.default_registry.get(category, name)
  except LookupError:
    return None


def _is_ours(fn: Any, name: str) -> bool:
  return (isinstance(fn, functools.partial) and fn.func is policy_loss
          and fn.keywords.get("objective") == name)


register()
