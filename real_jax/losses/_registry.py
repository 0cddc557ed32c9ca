"""The objectives by name: the one list of names, families and defaults.

Every other part of real_jax (the trainer's `config.loss`, `grad_analysis`,
the benchmarks, the Tunix adapter) reads the names from `LOSSES` and a loss's
default hyperparameters from `defaults(name)`. The defaults themselves are
declared once, in each function's keyword-only signature; `defaults` reads
them from there, so a documented default and the value used cannot drift.

A researcher's own objective takes the same path: `register(name, fn, ...)`
adds it to `LOSSES`, or a config names it `"package.module:attribute"` and
`get` imports and registers it on first use. Either way the trainer's two
drivers, the sweeps, the Tunix adapter and `grad_analysis.check_objective`
find it by name, with its hyperparameters read from its signature.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
import importlib
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
      `"clipped"` (PPO-style clipped surrogate on group advantages),
      `"policy_gradient"` (the other advantage-weighted objectives: CISPO,
      SAPO, GMPO, GPG, TOPR, DPPO, Clip-Cov, KL-Cov, DRO, VESPO) or `"custom"` (a
      registered objective).
    weights: for a registered objective, its closed-form gradient
      `weights(logp, old_logp, mask, rewards, **hparams) -> [B, G, T]`
      (`d loss / d logp`, written without autodiff), which
      `grad_analysis.check_objective(name)` checks; None if not given. The
      shipped objectives' closed forms live in `real_jax.grad_analysis`.
    edges: the importance ratios at which the weight jumps (clip edges).
    label: a registered objective's legend in figures (None: its name).
    color: a registered objective's colour (None: one `real_jax.palette`
      assigns). The shipped objectives' colours are the table in `palette`.
  """
  fn: Callable
  family: str
  weights: Callable | None = None
  edges: tuple[float, ...] = ()
  label: str | None = None
  color: str | None = None


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
    "topr": LossSpec(_policy_gradient.topr, "policy_gradient"),
}

_SHIPPED = frozenset(_SPECS)
# The shipped objectives, then those registered since (`register`).
LOSSES: dict[str, Callable] = {name: spec.fn for name, spec in _SPECS.items()}
LABEL_LOSSES: tuple[str, ...] = tuple(n for n, s in _SPECS.items() if s.family == "label")
CLIPPED_LOSSES: tuple[str, ...] = tuple(n for n, s in _SPECS.items() if s.family == "clipped")
# Every objective weighted by group advantages (the clipped family and the rest).
ADVANTAGE_LOSSES: tuple[str, ...] = tuple(n for n, s in _SPECS.items() if s.family != "label")


def register(name: str, fn: Callable, *, weights: Callable | None = None,
             edges: tuple[float, ...] = (), label: str | None = None,
             color: str | None = None, replace: bool = False) -> LossSpec:
  """Makes `fn` the objective `name`, for every part of real_jax.

  Args:
    name: the name a config, a sweep or the Tunix adapter (`real_jax_<name>`)
      uses; not a shipped objective's.
    fn: `fn(logp, old_logp, mask, rewards, *, hparam=default, ...)` on a
      `[B, G, T]` batch (`rewards [B, G]`), returning the scalar loss or
      `(loss, aux)`. Its hyperparameters are its keyword-only arguments; one
      called `tau` makes it label-based: the trainer passes the config's
      (traced) temperature.
    weights: its closed-form `d loss / d logp` (same arguments, `[B, G, T]`),
      for `grad_analysis.check_objective(name)`.
    edges: importance ratios where the weight jumps, left out of that check.
    label: its legend in figures (default: `name`).
    color: its colour in every figure, e.g. `"#3182bd"` (default: one
      `real_jax.palette` assigns, distinct from the shipped objectives').
    replace: allow replacing an earlier registration of `name`.

  Returns:
    The registry entry.
  """
  if not isinstance(name, str) or not name:
    raise TypeError(f"`name` must be a non-empty str, got {name!r}.")
  if not callable(fn):
    raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
  if name in _SHIPPED or (name in _SPECS and not replace):
    raise ValueError(f"loss {name!r} is already registered"
                     + ("" if name in _SHIPPED else "; pass replace=True to replace it") + ".")
  params = list(inspect.signature(fn).parameters.values())
  positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  if len(positional) < 4:
    raise TypeError(f"`fn` must take (logp, old_logp, mask, rewards, *, hyperparameters...); "
                    f"{name!r} takes {[p.name for p in positional]} positionally.")

  @functools.wraps(fn)
  def as_pair(*args, **kwargs):
    out = fn(*args, **kwargs)
    return out if isinstance(out, tuple) else (out, None)

  for arg, value in (("label", label), ("color", color)):
    if value is not None and not isinstance(value, str):
      raise TypeError(f"`{arg}` must be a str or None, got {type(value).__name__}.")
  spec = LossSpec(as_pair, "custom", weights, tuple(edges), label, color)
  _SPECS[name] = spec
  LOSSES[name] = as_pair
  return spec


def registered() -> tuple[str, ...]:
  """The objectives registered since import (`register`, or imported on use), in order."""
  return tuple(n for n in _SPECS if n not in _SHIPPED)


def _import(name: str) -> None:
  """Registers `"package.module:attribute"` under that name, imported on first use."""
  module, _, attribute = name.partition(":")
  try:
    obj = getattr(importlib.import_module(module), attribute)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"loss {name!r}: cannot import {attribute!r} from {module!r} ({e}).") from None
  # A LossSpec carries its closed form; a function may carry one as attributes.
  register(name, obj.fn if isinstance(obj, LossSpec) else obj,
           **{k: getattr(obj, k) for k in ("weights", "edges", "label", "color")
              if getattr(obj, k, None) is not None})


def _check_name(name: str) -> None:
  if isinstance(name, str) and name not in _SPECS and ":" in name:
    _import(name)
  if not isinstance(name, str) or name not in _SPECS:
    raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(_SPECS))} "
                     "(or 'package.module:function', imported on use).")


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


def check_hyperparameters(name: str, given, *, what: str, exclude: tuple[str, ...] = ()) -> None:
  """Raises `ValueError` for a key of `given` that loss `name` does not take.

  The message names `what` set it (a config field, an argument) and lists the
  hyperparameters `name` takes, less `exclude`.
  """
  accepted = [k for k in hyperparameters(name) if k not in exclude]
  unknown = sorted(set(given) - set(accepted))
  if unknown:
    raise ValueError(f"{what} sets {', '.join(unknown)}, which {name!r} does not take; "
                     f"it takes {', '.join(accepted) or 'none'}.")


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
