"""Every real_jax objective as a Tunix policy loss.

Importing this module registers, in Tunix's function registry:

* every objective of `real_jax.losses` as `real_jax_<name>`
  (`real_jax_real`, `real_jax_grpo`, `real_jax_cispo`, ...), a prefix no Tunix
  loss uses, so that real_jax's verified GRPO, DAPO or GSPO can run next to
  Tunix's own `grpo`; the label-based ones also keep their bare names
  (`real`, `grad`, `bce`, `real_product`), so that
  `GRPOConfig(policy_loss_fn="real", ...)` trains with REAL through Tunix's
  `GRPOLearner` (sharded models, fast rollouts, multi-host TPU);
* the advantage estimator `binary_labels`, which passes 0/1 rewards through
  unchanged after checking on the host that they are 0/1, and
  `real_jax_rewards`, which passes any rewards through unchanged: the
  advantage-weighted objectives compute their group advantages themselves
  (`grpo`, `rloo` or `drgrpo`, see `RealJaxGRPOConfig`), exactly as
  `real_jax.losses` does.

The loss computes per-token log-probabilities exactly as Tunix's own GRPO loss
does (`tunix.rl.common.compute_per_token_logps`, with the rollout
temperature), reshapes Tunix's flat rows `[B*G, T]` into groups `[B, G, T]`,
derives the labels from the rewards and calls `real_jax.losses` unchanged. The
returned aux holds the keys Tunix logs (`kl`, `pg_clipfrac`) plus
real_jax's diagnostics under `real_jax/...`.

Labels: a rollout is positive when its advantage is > 0. With the
`binary_labels` estimator (the default of `LabelGRPOConfig`) the advantage is
the 0/1 reward itself. With Tunix's `grpo`, `rloo` or `drgrpo` estimators and
binary rewards, the advantage of a correct rollout in a mixed group is > 0 and
of a wrong one < 0; a group whose rollouts all have the same reward has
advantage 0 everywhere and contributes nothing, as under its true labels. Use
`binary_labels` when you want non-binary rewards rejected rather than
thresholded at their group mean.

Example:
  >>> import real_jax.integrations.tunix as rj_tunix
  >>> config = rj_tunix.LabelGRPOConfig(policy_loss_fn="real", tau=0.5, num_generations=8)
  >>> config.advantage_estimator, config.beta
  ('binary_labels', 0.0)
  >>> baseline = rj_tunix.RealJaxGRPOConfig(policy_loss_fn="real_jax_dapo", num_generations=8,
  ...                                       loss_kwargs={"clip_ratio_c": 3.0})
  >>> baseline.advantage_estimator
  'real_jax_rewards'

  Either config then drives Tunix's learner:
  `GRPOLearner(rl_cluster=cluster, algo_config=config, reward_fns=[real_jax.tasks.math.reward_fn])`.

Requires the `tunix` extra (`pip install -e '.[tunix]'`); written against
google-tunix 0.1.7.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

try:
  from tunix.rl import algo_core as _tunix_algo_core  # registers "grpo" first
  from tunix.rl import common as _tunix_common
  from tunix.rl import function_registry as _tunix_registry
  from tunix.rl.grpo import grpo_learner as _tunix_grpo
except ImportError as e:  # pragma: no cover - depends on the environment
  raise ImportError(
      "real_jax.integrations.tunix needs Tunix: install the extra with "
      "`pip install -e '.[tunix]'` (google-tunix).") from e

from real_jax import losses as rj_losses
from real_jax import tasks as _tasks
from real_jax.training import metrics as _metrics

__all__ = [
    "OBJECTIVES",
    "PREFIX",
    "REGISTERED",
    "LABEL_ESTIMATOR",
    "REWARD_ESTIMATOR",
    "DEFAULT_TAU",
    "DIAGNOSTICS",
    "LabelGRPOConfig",
    "RealJaxGRPOConfig",
    "binary_labels",
    "raw_rewards",
    "group_rows",
    "labels_from_advantages",
    "label_loss",
    "advantage_loss",
    "advantage_diagnostics",
    "diagnostics",
    "policy_loss",
    "log_diagnostics",
    "register",
    "CharTokenizerAdapter",
]

OBJECTIVES = rj_losses.LABEL_LOSSES
PREFIX = "real_jax_"
# Every objective under its prefixed name: name in Tunix's registry -> loss.
REGISTERED = {PREFIX + name: name for name in rj_losses.LOSSES}
LABEL_ESTIMATOR = "binary_labels"
REWARD_ESTIMATOR = "real_jax_rewards"
# Tunix spells verl's "seq-" aggregation modes "sequence-".
_AGG_MODES = {"sequence-mean-token-mean": "seq-mean-token-mean",
              "sequence-mean-token-sum": "seq-mean-token-sum",
              "sequence-mean-token-sum-norm": "seq-mean-token-sum-norm"}
# The paper's temperature; used when the config has no `tau` field.
DEFAULT_TAU = 0.5
# Named as the trainer's metrics schema where the quantity is the same one.
_MIXED = "real_jax/" + _metrics.name("mixed_group_fraction")
_SCORE_POS = "real_jax/" + _metrics.name("score_pos_mean")
_SCORE_NEG = "real_jax/" + _metrics.name("score_neg_mean")
DIAGNOSTICS = (_MIXED, _SCORE_POS, _SCORE_NEG, "real_jax/positive_fraction")


@dataclasses.dataclass(kw_only=True)
class LabelGRPOConfig(_tunix_grpo.GRPOConfig):
  """`GRPOConfig` with the paper's defaults for the label-based objectives.

  Attributes:
    policy_loss_fn: one of `OBJECTIVES`. Default `real`.
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
    if self.policy_loss_fn not in OBJECTIVES:
      raise ValueError(
          f"`policy_loss_fn` must be one of {OBJECTIVES} for LabelGRPOConfig; "
          f"got {self.policy_loss_fn!r}. Use Tunix's GRPOConfig for 'grpo'.")
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
    names = [PREFIX + n for n in rj_losses.ADVANTAGE_LOSSES]
    if self.policy_loss_fn not in names:
      raise ValueError(f"`policy_loss_fn` must be one of {names} for RealJaxGRPOConfig; got "
                       f"{self.policy_loss_fn!r}. Use LabelGRPOConfig for the label-based ones.")
    if self.advantage_estimator != REWARD_ESTIMATOR:
      raise ValueError(
          f"`advantage_estimator` must be {REWARD_ESTIMATOR!r}: real_jax's losses compute "
          "their group advantages from the rewards (choose the estimator with "
          f"loss_kwargs={{'advantage': 'rloo'}}); got {self.advantage_estimator!r}.")
    name = REGISTERED[self.policy_loss_fn]
    unknown = set(self.loss_kwargs) - set(rj_losses.hyperparameters(name))
    if unknown:
      raise ValueError(f"`loss_kwargs` has {sorted(unknown)}, which {name!r} does not take; "
                       f"it takes {', '.join(rj_losses.hyperparameters(name))}.")


def _flat_rewards(rewards: Any, num_generations: int) -> np.ndarray:
  """The estimators' input as float32, checked to be whole groups of `num_generations`."""
  r = np.asarray(rewards, dtype=np.float32)
  if r.ndim != 1 or num_generations < 1 or r.shape[0] % num_generations:
    raise ValueError(
        f"`rewards` must be a flat array of whole groups of num_generations="
        f"{num_generations} rollouts; got shape {r.shape}.")
  return r


def binary_labels(rewards: Any, num_generations: int) -> np.ndarray:
  """Advantage estimator that returns 0/1 rewards as labels, after checking them.

  Runs on the host, before the jitted loss, so a non-binary reward fails here
  with a readable message instead of being thresholded silently.
  """
  r = _flat_rewards(rewards, num_generations)
  bad = r[(r != 0) & (r != 1)]
  if bad.size:
    raise ValueError(
        "`rewards` must be 0 or 1 for the label-based objectives "
        f"{OBJECTIVES}; got values such as {np.unique(bad)[:5].tolist()}. "
        "Use a 0/1 verifier (e.g. real_jax.tasks.math.reward_fn), a single "
        "reward function (Tunix sums several), or Tunix's 'grpo' advantage "
        "estimator to label rollouts by the sign of their advantage.")
  return r


def raw_rewards(rewards: Any, num_generations: int) -> np.ndarray:
  """Advantage estimator that passes the rewards through unchanged (any real values)."""
  r = _flat_rewards(rewards, num_generations)
  if not np.all(np.isfinite(r)):
    raise ValueError("`rewards` must be finite; got NaN or inf.")
  return r


def group_rows(x: jax.Array, num_generations: int, name: str) -> jax.Array:
  """`[B*G, ...] -> [B, G, ...]`: Tunix's flat rows as rollout groups.

  Tunix lays out each prompt's `G` rollouts in consecutive rows, and its
  micro-batches are counted in prompts; a micro-batch whose row count is not
  a multiple of `G` has split a group, and a group-relative loss computed on
  it would be wrong, so it is refused.
  """
  rows = x.shape[0]
  if num_generations < 1 or rows % num_generations:
    raise ValueError(
        f"The {name!r} policy loss got a micro-batch of {rows} rollouts, which "
        f"is not a whole number of groups of num_generations={num_generations}"
        ". Label-based objectives compare the rollouts of one prompt, so each "
        "micro-batch must hold whole groups: keep mini_batch_size and "
        "train_micro_batch_size counted in prompts (Tunix multiplies them by "
        "num_generations) and do not re-split TrainExamples by rows.")
  return x.reshape(rows // num_generations, num_generations, *x.shape[1:])


def labels_from_advantages(advantages: jax.Array) -> jax.Array:
  """0/1 labels from Tunix advantages: positive advantage means correct."""
  return (advantages > 0).astype(jnp.float32)


def label_loss(objective: str, per_token_logps: jax.Array,
               old_per_token_logps: jax.Array, completion_mask: jax.Array,
               advantages: jax.Array, *, num_generations: int,
               tau: float) -> tuple[jax.Array, rj_losses.LabelLossAux]:
  """The real_jax objective on Tunix's flat rows.

  Args:
    objective: one of `OBJECTIVES`.
    per_token_logps, old_per_token_logps, completion_mask: `[B*G, T]`.
    advantages: `[B*G]` (or `[B*G, T]` constant along T).
    num_generations: `G`.
    tau: temperature.

  Returns:
    What `real_jax.losses.<objective>` returns on the `[B, G, T]` groups.
  """
  if objective not in OBJECTIVES:
    raise ValueError(f"`objective` must be one of {OBJECTIVES}; got {objective!r}.")
  if advantages.ndim == 2:
    advantages = advantages[:, 0]
  labels = labels_from_advantages(advantages)
  group = functools.partial(group_rows, num_generations=num_generations,
                            name=objective)
  return rj_losses.get(objective)(
      group(per_token_logps), group(old_per_token_logps),
      group(completion_mask), group(labels), tau=tau)


def advantage_loss(objective: str, per_token_logps: jax.Array,
                   old_per_token_logps: jax.Array, completion_mask: jax.Array,
                   rewards: jax.Array, *, num_generations: int,
                   loss_kwargs: dict | None = None
                   ) -> tuple[jax.Array, rj_losses.ClippedLossAux]:
  """An advantage-weighted real_jax objective on Tunix's flat rows `[B*G, T]`.

  `rewards` `[B*G]` are the raw rewards (`real_jax_rewards` estimator); the
  loss computes the group advantages itself. Returns what
  `real_jax.losses.<objective>` returns on the `[B, G, T]` groups.
  """
  if objective not in rj_losses.ADVANTAGE_LOSSES:
    raise ValueError(f"`objective` must be one of {rj_losses.ADVANTAGE_LOSSES}; "
                     f"got {objective!r}.")
  if rewards.ndim == 2:
    rewards = rewards[:, 0]
  kwargs = dict(loss_kwargs or {})
  if "loss_agg_mode" in kwargs:
    kwargs["loss_agg_mode"] = _AGG_MODES.get(kwargs["loss_agg_mode"], kwargs["loss_agg_mode"])
  group = functools.partial(group_rows, num_generations=num_generations, name=objective)
  return rj_losses.get(objective)(
      group(per_token_logps), group(old_per_token_logps), group(completion_mask),
      group(rewards), **kwargs)


def advantage_diagnostics(aux: rj_losses.ClippedLossAux) -> dict[str, jax.Array]:
  """The label diagnostics' counterparts, read off the signs of the advantages."""
  positive, negative = aux.advantages > 0, aux.advantages < 0
  present = jnp.ones(aux.advantages.shape[0], bool)
  mixed = jnp.any(positive, -1) & jnp.any(negative, -1)
  return {
      _MIXED: _masked_mean(mixed.astype(jnp.float32), present),
      _SCORE_POS: _masked_mean(aux.scores, positive),
      _SCORE_NEG: _masked_mean(aux.scores, negative),
      "real_jax/positive_fraction": _masked_mean(positive.astype(jnp.float32),
                                                 positive | negative),
  }


def _masked_mean(x: jax.Array, where: jax.Array) -> jax.Array:
  where = where.astype(x.dtype)
  return jnp.sum(x * where) / jnp.maximum(jnp.sum(where), 1)


def diagnostics(aux: rj_losses.LabelLossAux) -> dict[str, jax.Array]:
  """Scalars worth logging from a label-based objective's aux."""
  present_groups = jnp.any(aux.positive | aux.negative, axis=-1)
  return {
      _MIXED: _masked_mean(aux.valid_group.astype(jnp.float32), present_groups),
      _SCORE_POS: _masked_mean(aux.scores, aux.positive),
      _SCORE_NEG: _masked_mean(aux.scores, aux.negative),
      "real_jax/positive_fraction": _masked_mean(
          aux.positive.astype(jnp.float32), aux.positive | aux.negative),
  }


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

  if objective in OBJECTIVES:
    loss, label_aux = label_loss(
        objective, per_token_logps, old_per_token_logps, completion_mask,
        jnp.asarray(train_example.advantages, jnp.float32),
        num_generations=algo_config.num_generations,
        tau=getattr(algo_config, "tau", DEFAULT_TAU))
    # Label-based objectives have no ratio clipping.
    clipfrac, extra = jnp.float32(0.0), diagnostics(label_aux)
  else:
    loss, adv_aux = advantage_loss(
        objective, per_token_logps, old_per_token_logps, completion_mask,
        jnp.asarray(train_example.advantages, jnp.float32),
        num_generations=algo_config.num_generations,
        loss_kwargs=getattr(algo_config, "loss_kwargs", None))
    clipfrac, extra = adv_aux.clip_fraction.astype(jnp.float32), advantage_diagnostics(adv_aux)

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


def log_diagnostics(learner: Any) -> None:
  """Make a `GRPOLearner` log real_jax's diagnostics next to Tunix's metrics."""
  learner.rl_cluster.actor_trainer.with_rl_metrics_to_log(
      {"kl": np.mean, "pg_clipfrac": np.mean,
       **{name: np.mean for name in DIAGNOSTICS}})


def register() -> None:
  """Register the objectives and the two estimators (idempotent)."""
  for registered, name in [(n, n) for n in OBJECTIVES] + list(REGISTERED.items()):
    if not _is_ours(_registered("policy_loss_fn", registered)):
      _tunix_registry.register_policy_loss_fn(registered)(
          functools.partial(policy_loss, objective=name))
  for estimator, fn in ((LABEL_ESTIMATOR, binary_labels), (REWARD_ESTIMATOR, raw_rewards)):
    if _registered("advantage_estimator", estimator) is not fn:
      _tunix_registry.register_advantage_estimator(estimator)(fn)


def _registered(category: str, name: str) -> Any:
  try:
    return _tunix_registry.default_registry.get(category, name)
  except LookupError:
    return None


def _is_ours(fn: Any) -> bool:
  return isinstance(fn, functools.partial) and fn.func is policy_loss


register()


class CharTokenizerAdapter:
  """real_jax's `CharTokenizer` with the interface Tunix's samplers call.

  Lets the toy arithmetic tasks run through Tunix unchanged: the same
  prompts, the same verifiers, a Tunix model family in place of real_jax's.
  """

  def __init__(self, tokenizer: Any):
    self._tokenizer = tokenizer

  @property
  def vocab_size(self) -> int:
    return self._tokenizer.vocab_size

  def encode(self, text: str, **kwargs: Any) -> list[int]:
    del kwargs
    return self._tokenizer.encode(text)

  def decode(self, ids: Any, **kwargs: Any) -> str:
    del kwargs
    return self._tokenizer.decode([i for i in np.asarray(ids).ravel().tolist()
                                   if i not in (_tasks.PAD, _tasks.BOS)])

  def bos_id(self) -> int:
    return _tasks.BOS

  def eos_id(self) -> int:
    return _tasks.EOS

  def pad_id(self) -> int:
    return _tasks.PAD
