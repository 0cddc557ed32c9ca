"""What the command-line entry points share: a user's mistake in one line, never a traceback.

  app.run(main, flags_parser=cli.parse_flags)
  cfg = cli.checked(_CONFIG.value)     # in main: config_lib.validate, as a usage error
"""

from __future__ import annotations

import re
import sys

from absl import app
import ml_collections

from real_jax.training import config as config_lib

__all__ = ["parse_flags", "checked"]


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with `--config.FIELD=...` for a field the config lacks
  reported in one line (ml_collections raises a bare AttributeError there)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    key = re.sub(r"[\"']", "", str(e))
    given = [a for a in argv[1:] if a.startswith("--config.") and key in a] or [f"--config.{key}"]
    sys.exit(f"error: {given[0]}: the config has no field {key!r}. A loss's hyperparameters "
             f"are set as --config.loss_kwargs.{key}=VALUE (the fields of config.loss_kwargs "
             "are every shipped loss's; a registered loss's own go in the config file).")


def checked(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`cfg` if the trainer can run it; else a usage error naming the field."""
  try:
    config_lib.validate(cfg)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  return cfg
