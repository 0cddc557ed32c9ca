"""The Tunix adapter's computations, in plain JAX: no Tunix, no orbax.

Labels and advantages from rewards, the objectives on Tunix's flat rows, the
diagnostics and the tokenizer adapter. `real_jax.integrations.tunix` is the
public face of these and of the parts that need Tunix
(`real_jax.integrations._tunix_engine`); read its docstring.
"""


from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from real_jax import losses as rj_losses
from real_jax import metric_names
from real_jax import tasks as _tasks

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
_MIXED = "real_jax/" + metric_names.name("mixed_group_fraction")
_SCORE_POS = "real_jax/" + metric_names.name("score_pos_mean")
_SCORE_NEG = "real_jax/" + metric_names.name("score_neg_mean")
DIAGNOSTICS = (_MIXED, _SCORE_POS, _SCORE_NEG, "real_jax/positive_fraction")


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


def takes_tau(objective: str) -> bool:
  """Label-based: the loss takes a temperature (read from its signature, so that
  a registered objective is sorted as ours are). Raises for an unknown name."""
  return "tau" in rj_losses.hyperparameters(objective)


def tunix_name(policy_loss_fn: str) -> str:
  """The real_jax loss behind a Tunix `policy_loss_fn`: `real_jax_<name>` for
  any loss `real_jax.losses.get` knows (a registered one included), or a
  label-based objective's bare name. Raises ValueError otherwise."""
  name = policy_loss_fn[len(PREFIX):] if policy_loss_fn.startswith(PREFIX) else policy_loss_fn
  if name != policy_loss_fn or name in OBJECTIVES:
    rj_losses.get(name)  # raises, listing the known ones
    return name
  raise ValueError(f"`policy_loss_fn` {policy_loss_fn!r} is no real_jax objective: use "
                   f"{PREFIX}<name> for a loss of real_jax.losses (registered ones included) "
                   f"or one of {OBJECTIVES}.")


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
  if not takes_tau(objective):
    raise ValueError(f"`objective` must be label-based (take `tau`), as {OBJECTIVES}; "
                     f"got {objective!r}.")
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
                   ) -> tuple[jax.Array, rj_losses.AdvantageLossAux]:
  """An advantage-weighted real_jax objective on Tunix's flat rows `[B*G, T]`.

  `rewards` `[B*G]` are the raw rewards (`real_jax_rewards` estimator); the
  loss computes the group advantages itself. Returns what
  `real_jax.losses.<objective>` returns on the `[B, G, T]` groups.
  """
  if takes_tau(objective):
    raise ValueError(f"`objective` must be advantage-weighted (no `tau`), as "
                     f"{rj_losses.ADVANTAGE_LOSSES}; got {objective!r}.")
  if rewards.ndim == 2:
    rewards = rewards[:, 0]
  kwargs = dict(loss_kwargs or {})
  if "loss_agg_mode" in kwargs:
    kwargs["loss_agg_mode"] = _AGG_MODES.get(kwargs["loss_agg_mode"], kwargs["loss_agg_mode"])
  group = functools.partial(group_rows, num_generations=num_generations, name=objective)
  return rj_losses.get(objective)(
      group(per_token_logps), group(old_per_token_logps), group(completion_mask),
      group(rewards), **kwargs)


def advantage_diagnostics(aux: rj_losses.AdvantageLossAux) -> dict[str, jax.Array]:
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


def log_diagnostics(learner: Any) -> None:
  """Make a `GRPOLearner` log real_jax's diagnostics next to Tunix's metrics."""
  learner.rl_cluster.actor_trainer.with_rl_metrics_to_log(
      {"kl": np.mean, "pg_clipfrac": np.mean,
       **{name: np.mean for name in DIAGNOSTICS}})


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
