"""The objectives by name: the one list of names, families and defaults.

Every other part of real_jax (the trainer's `config.loss`, `grad_analysis`,
the benchmarks, the Tunix adapter) reads the names from `LOSSES` and a loss's
default hyperparameters from `defaults(name)`. The defaults themselves are
declared once, in each function's keyword-only signature; `defaults` reads
them from there, so a documented default and the value used cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import inspect
from typing import Any

from real_jax.losses import _clipped
from real_jax.losses import _covariance
from real_jax.losses import _label
from real_jax.losses import _policy_gradient


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """One registered objective.

  Attributes:
    fn: the batched loss, `fn(logp, old_logp, mask, rewards, **hparams)`.
    family: `"label"` (rewards as class labels, temperature `tau`),
      `"clipped"` (PPO-style clipped surrogate on group advantages) or
      `"policy_gradient"` (the other advantage-weighted objectives: CISPO,
      SAPO, GMPO, GPG, DPPO, Clip-Cov, KL-Cov, DRO, VESPO).
  """
  fn: Callable
  family: str


_SPECS: dict[str, LossSpec] = {
    "real": LossSpec(_label.real, "label"),
    "grad": LossSpec(_label.grad, "label"),
    "bce": LossSpec(_label.bce, "label"),
    "real_product": LossSpec(_label.real_product, "label"),
    "grpo": LossSpec(_clipped.grpo, "clipped"),
    "dapo": LossSpec(_clipped.dapo, "clipped"),
    "dr_grpo": LossSpec(_clipped.dr_grpo, "clipped"),
    "gspo": LossSpec(_clipped.gspo, "clipped"),
    "cispo": LossSpec(_policy_gradient.cispo, "policy_gradient"),
    "sapo": LossSpec(_policy_gradient.sapo, "policy_gradient"),
    "gmpo": LossSpec(_policy_gradient.gmpo, "policy_gradient"),
    "gpg": LossSpec(_policy_gradient.gpg, "policy_gradient"),
    "luspo": LossSpec(_clipped.luspo, "clipped"),
    "dppo_tv": LossSpec(_policy_gradient.dppo_tv, "policy_gradient"),
    "dppo_kl": LossSpec(_policy_gradient.dppo_kl, "policy_gradient"),
    "clip_cov": LossSpec(_covariance.clip_cov, "policy_gradient"),
    "kl_cov": LossSpec(_covariance.kl_cov, "policy_gradient"),
    "dro": LossSpec(_policy_gradient.dro, "policy_gradient"),
    "vespo": LossSpec(_policy_gradient.vespo, "policy_gradient"),
}

LOSSES: dict[str, Callable] = {name: spec.fn for name, spec in _SPECS.items()}
LABEL_LOSSES: tuple[str, ...] = tuple(n for n, s in _SPECS.items() if s.family == "label")
CLIPPED_LOSSES: tuple[str, ...] = tuple(n for n, s in _SPECS.items() if s.family == "clipped")
# Every objective weighted by group advantages (the clipped family and the rest).
ADVANTAGE_LOSSES: tuple[str, ...] = tuple(n for n, s in _SPECS.items() if s.family != "label")


def _check_name(name: str) -> None:
  if not isinstance(name, str) or name not in _SPECS:
    raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(_SPECS))}.")


def get(name: str) -> Callable:
  """Returns the batched loss function registered under `name`.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  _check_name(name)
  return _SPECS[name].fn


def spec(name: str) -> LossSpec:
  """The registry entry of `name` (function and family)."""
  _check_name(name)
  return _SPECS[name]


def hyperparameters(name: str) -> tuple[str, ...]:
  """The names of every keyword-only hyperparameter loss `name` accepts.

  >>> hyperparameters("real")
  ('tau',)
  """
  _check_name(name)
  return tuple(p.name for p in inspect.signature(_SPECS[name].fn).parameters.values()
               if p.kind is p.KEYWORD_ONLY)


def defaults(name: str) -> dict[str, Any]:
  """The default hyperparameters of loss `name`, read from its signature.

  Only scalar hyperparameters are returned (`tau` for the label-based losses;
  clip range, reward scaling, aggregation and KL settings for the clipped
  ones); array arguments such as `ref_logp` and defaults of None are left out.

  >>> defaults("dapo")["epsilon_high"]
  0.28
  >>> defaults("real")
  {'tau': 0.5}
  """
  _check_name(name)
  out = {}
  for param in inspect.signature(_SPECS[name].fn).parameters.values():
    if param.kind is param.KEYWORD_ONLY and param.default is not None:
      out[param.name] = param.default
  return out
