"""Name -> loss function, for configs and command lines."""

from __future__ import annotations

from typing import Callable

from real_jax.losses import _clipped, _label

LOSSES: dict[str, Callable] = {
    "real": _label.real,
    "grad": _label.grad,
    "bce": _label.bce,
    "real_product": _label.real_product,
    "grpo": _clipped.grpo,
    "dapo": _clipped.dapo,
    "dr_grpo": _clipped.dr_grpo,
    "gspo": _clipped.gspo,
}

LABEL_LOSSES = ("real", "grad", "bce", "real_product")
CLIPPED_LOSSES = ("grpo", "dapo", "dr_grpo", "gspo")


def get(name: str) -> Callable:
  """Returns the batched loss function registered under `name`.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  try:
    return LOSSES[name]
  except (KeyError, TypeError):
    raise ValueError(
        f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}."
    ) from None
