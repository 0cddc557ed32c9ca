"""The optional extras stay optional: the core package never imports them."""

import subprocess
import sys

CORE_MODULES = [
    "real_jax", "real_jax.losses", "real_jax.grad_analysis", "real_jax.model",
    "real_jax.sampling", "real_jax.tasks", "real_jax.tasks.math",
    "real_jax.train", "real_jax.train_scan", "real_jax.sweep",
    "real_jax.integrations",
]


def test_core_imports_neither_tunix_nor_math_verify():
  code = ("import sys\n"
          + "".join(f"import {m}\n" for m in CORE_MODULES)
          + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tunix', 'math_verify', 'transformers', 'torch'))\n"
          + "print(','.join(bad))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, timeout=300)
  assert out.stdout.strip() == "", out.stdout
