"""The offline check the site build runs (tests/site_check.py, called from docs/conf.py)."""

from __future__ import annotations

import pytest
import site_check

PAGE = """<html><head>
<script src="https://cdn.jsdelivr.net/npm/mathjax@4/tex-chtml.js"></script>
<script src="_static/mathjax/tex-chtml.js"></script>
<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato">
<link rel="stylesheet" href="_static/theme.css">
<link rel="canonical" href="https://real-jax.example/index.html">
<style>@font-face { src: url('https://fonts.gstatic.com/x.woff2') } .a { background: url(img.png) }</style>
</head><body>
<a href="https://github.com/real-jax/real_jax">the repository</a>
<div style="background-image: url(http://example.com/b.png)"></div>
<img src="figure.png"><iframe src="https://www.youtube.com/embed/x"></iframe>
<script>var u = "https://not-a-load.example";</script>
</body></html>"""


def test_every_external_load_is_found_and_nothing_else():
  found = site_check.external_loads(PAGE)
  assert found == [
      "script: https://cdn.jsdelivr.net/npm/mathjax@4/tex-chtml.js",
      "link rel=stylesheet: //fonts.googleapis.com/css?family=Lato",
      "style: https://fonts.gstatic.com/x.woff2",
      "style attribute: http://example.com/b.png",
      "iframe: https://www.youtube.com/embed/x",
  ]


@pytest.mark.parametrize("css, want", [
    ("@import 'https://fonts.googleapis.com/css2?family=Inter';", 1),
    ('@font-face { src: url("//cdn.example/f.woff") format("woff") }', 1),
    ("@font-face { src: url(../fonts/f.woff2) } i { background: url(data:image/png;base64,AA) }",
     0),
])
def test_style_sheets(css, want):
  assert len(site_check.external_loads(css, "css")) == want


def test_check_site_walks_pages_and_sheets(tmp_path):
  (tmp_path / "sub").mkdir()
  (tmp_path / "index.html").write_text('<script src="_static/a.js"></script>')
  (tmp_path / "sub" / "page.html").write_text(
      '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>')
  (tmp_path / "sub" / "theme.css").write_text("@import url(https://fonts.example/x.css);")
  assert site_check.check_site(str(tmp_path)) == {
      "sub/page.html": ["script: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"],
      "sub/theme.css": ["css url: https://fonts.example/x.css"]}
  (tmp_path / "sub" / "page.html").write_text('<script src="../_static/b.js"></script>')
  (tmp_path / "sub" / "theme.css").write_text("@import url(base.css);")
  assert site_check.check_site(str(tmp_path)) == {}


def test_an_empty_build_proves_nothing(tmp_path):
  with pytest.raises(ValueError, match="holds no HTML page"):
    site_check.check_site(str(tmp_path))
