"""What the command-line entry points share: a user's mistake in one line, never a traceback.

  app.run(main, flags_parser=cli.parse_flags)
  cfg = cli.checked(_CONFIG.value)     # in main: loaded, then config_lib.validate
  cfg = cli.loaded(_CONFIG.value)      # loaded only (a sweep's points validate later)
"""

from __future__ import annotations

import re
import sys

from absl import app
import ml_collections

from real_jax.training import config as config_lib

__all__ = ["parse_flags", "loaded", "checked"]


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with `--config.FIELD=...` for a field the config lacks
  reported in one line (ml_collections raises a bare AttributeError there)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    text = str(e).replace("\\'", "'")
    key = (re.findall(r"'([A-Za-z0-9_.]+)'", text) or [text])[0]
    suggestion = re.findall(r'Did you mean "([A-Za-z0-9_.]+)"', text)
    given = [a for a in argv[1:] if a.startswith("--config.") and key in a] or [f"--config.{key}"]
    if key in config_lib.get_config().loss_kwargs:
      hint = f" It is a loss hyperparameter: --config.loss_kwargs.{key}=VALUE."
    elif suggestion:
      hint = f" Did you mean {suggestion[0]!r}?"
    else:
      hint = (" A loss's hyperparameters go under --config.loss_kwargs (a registered "
              "loss's own in the config file).")
    sys.exit(f"error: {given[0].split('=')[0]}: the config has no field {key!r}.{hint}")


def loaded(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`cfg`, or one line if `--config=FILE` could not be loaded.

  ml_collections defers that error to the config's first use, so it is
  forced here, before the command does anything.
  """
  try:
    cfg.get("loss")
  except OSError as e:
    sys.exit(f"error: --config: {str(e).splitlines()[-1].strip() or e}")
  return cfg


def checked(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`cfg`, loaded, if the trainer can run it; else a usage error naming the field."""
  try:
    config_lib.validate(loaded(cfg))
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  return cfg
