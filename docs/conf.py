"""Sphinx configuration of real_jax's documentation site (`make docs`)."""

project = "real_jax"
author = "the real_jax authors"
copyright = "2026, the real_jax authors"

extensions = [
    "myst_nb",  # Markdown pages and the notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings
    "sphinx.ext.mathjax",
]

# The notebooks run in `make test` already; the site shows their committed form.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Every figure, table and result file under docs/ is data, not a page.
exclude_patterns = ["_build", "study", "accelerators", "**/.ipynb_checkpoints"]

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
