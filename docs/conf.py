"""Sphinx configuration of real_jax's documentation site (`make docs`)."""

import importlib.util
import os

# The notebooks' kernels compile with the test run's settings and share its
# compilation cache (tests/xla_env.py): the build executes them in 101 s
# instead of 137 s on the 2-core CPU, cold.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


_load(os.path.join(_ROOT, "tests", "xla_env.py"), "xla_env").configure(_ROOT)

project = "real_jax"
author = "the real_jax authors"
copyright = "2026, the real_jax authors"

extensions = [
    "myst_nb",  # Markdown pages and the notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings
    "sphinx.ext.mathjax",
]

# MathJax 3 served from the site itself, not a CDN, so that formulas typeset
# offline: its files come from the pip package sphinx-mathjax-offline (its
# `static/mathjax` folder, copied into `_static/mathjax`); its Sphinx
# extension is not used, as it does not declare itself safe for parallel builds.
html_static_path = ["_static", os.path.join(os.path.dirname(
    importlib.util.find_spec("sphinx-mathjax-offline").origin), "static")]
mathjax_path = "mathjax/tex-chtml.js"

# The notebooks are stored without outputs and executed here, once per build
# (`make docs`, part of `make test`): the site shows their figures, and an error
# in any cell fails the build, which is how the tests run them.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 900
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Every figure, table and result file under docs/ is data, not a page; the
# Markdown tables the commands wrote (`*_summary.md`, `*_cpu.md`,
# `study*/summary.md`) are included by the results pages.
# The results pages' templates (results/templates) are sources of the pages
# `python -m real_jax.study --pages` renders, not pages.
exclude_patterns = ["_build", "study", "study_atlas", "study_length", "mechanism", "accelerators",
                    "**/.ipynb_checkpoints", "*_summary.md", "*_cpu.md", "results/templates"]

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "sphinx_book_theme"
html_title = "real_jax"
html_theme_options = {"repository_url": "https://github.com/real-jax/real_jax",
                      "use_repository_button": False, "show_toc_level": 2}


def _write_explorer_data(app, exception):
  """The gradient explorer's committed data, as the script its page loads."""
  if exception is not None or app.builder.format != "html":
    return
  checks = _load(os.path.join(_ROOT, "tests", "explorer_checks.py"), "explorer_checks")
  with open(os.path.join(app.outdir, "_static", "explorer_data.js"), "w") as f:
    f.write(checks.data_script())


def _check_offline(app, exception):
  """Fails the build when a page or style sheet loads a script, style or font from outside."""
  if exception is not None or app.builder.format != "html":
    return
  site_check = _load(os.path.join(_ROOT, "tests", "site_check.py"), "site_check")
  found = site_check.check_site(app.outdir)
  if found:
    lines = [f"  {page}: {', '.join(loads)}" for page, loads in sorted(found.items())]
    raise RuntimeError("the site must render offline, but these load from the network:\n"
                       + "\n".join(lines))


def setup(app):
  app.connect("build-finished", _write_explorer_data)
  app.connect("build-finished", _check_offline)
