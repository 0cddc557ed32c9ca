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
  """absl's flag parsing, with the config's own mistakes reported in one line:
  `--config=FILE` that cannot be read, and `--config.FIELD=...` for a field
  the config lacks (ml_collections raises a bare OSError or AttributeError)."""
  try:
    return app.parse_flags_with_usage(argv)
  except OSError:
    given = [a for a in argv[1:] if a.startswith("--config=")] or ["--config"]
    sys.exit(f"error: {given[0]}: no such config file (or it cannot be read).")
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


def checked(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`cfg` if the trainer can run it; else a usage error naming the field.

  A `--config=FILE` that could not be loaded surfaces here, on first use
  (ml_collections defers it): one line, not its traceback.
  """
  try:
    config_lib.validate(cfg)
  except OSError as e:
    sys.exit(f"error: --config: {str(e).splitlines()[-1].strip() or e}")
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  return cfg
