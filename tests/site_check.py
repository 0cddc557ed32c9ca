"""The built site loads nothing from the network: no script, style or font from outside.

`docs/conf.py` runs `check_site` when a build finishes, so `make docs` (and
with it `make test`) fails on a page that would typeset its formulas, or run
a script, only online. Links a reader may follow (`<a href>`) are not loads
and are allowed.
"""

from __future__ import annotations

import html.parser
import os
import re

# A reference that leaves the site: a scheme with a host, or protocol-relative.
_EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
# `url(...)` and `@import "..."` in CSS: fonts, images and other sheets.
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)
# The `<link rel>` kinds that make the browser fetch something for the page.
_LOADED_LINKS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "manifest",
                 "preconnect", "dns-prefetch"}


def is_external(url: str) -> bool:
  """True for `https://host/...`, `http://...` and `//host/...`; False for site paths.

  >>> is_external("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js")
  True
  >>> is_external("_static/mathjax/tex-chtml.js"), is_external("#section")
  (False, False)
  """
  return bool(_EXTERNAL.match(url))


class _Loads(html.parser.HTMLParser):
  """Collects what a page makes the browser fetch: scripts, sheets, fonts, frames, inline CSS."""

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.urls: list[tuple[str, str]] = []
    self._in_style = False

  def handle_starttag(self, tag, attrs):
    a = {k: v or "" for k, v in attrs}
    if tag in ("script", "iframe", "embed") and a.get("src"):
      self.urls.append((tag, a["src"]))
    elif tag == "link" and _LOADED_LINKS & set(a.get("rel", "").lower().split()):
      self.urls.append((f"link rel={a.get('rel')}", a.get("href", "")))
    elif tag == "object" and a.get("data"):
      self.urls.append((tag, a["data"]))
    if a.get("style"):
      self.urls += [("style attribute", u) for u in css_urls(a["style"])]
    self._in_style = tag == "style"

  def handle_endtag(self, tag):
    if tag == "style":
      self._in_style = False

  def handle_data(self, data):
    if self._in_style:
      self.urls += [("style", u) for u in css_urls(data)]


def css_urls(text: str) -> list[str]:
  """The URLs a style sheet loads (`url(...)`, `@import`)."""
  return [a or b for a, b in _CSS_URL.findall(text)]


def external_loads(text: str, kind: str = "html") -> list[str]:
  """`"what: url"` for every external script, style, font or frame `text` loads.

  `kind` is "html" for a page and "css" for a style sheet.
  """
  if kind == "css":
    return [f"css url: {u}" for u in css_urls(text) if is_external(u)]
  parser = _Loads()
  parser.feed(text)
  return [f"{what}: {u}" for what, u in parser.urls if is_external(u)]


def check_site(folder: str) -> dict[str, list[str]]:
  """`{file: [external loads]}` over every HTML page and CSS file under `folder` (empty: offline).

  Raises `ValueError` when the folder holds no page: an empty build proves nothing.
  """
  found, pages = {}, 0
  for root, _, files in os.walk(folder):
    for name in files:
      kind = {".html": "html", ".css": "css"}.get(os.path.splitext(name)[1])
      if kind is None:
        continue
      pages += kind == "html"
      path = os.path.join(root, name)
      with open(path, encoding="utf-8", errors="replace") as f:
        bad = external_loads(f.read(), kind)
      if bad:
        found[os.path.relpath(path, folder)] = bad
  if not pages:
    raise ValueError(f"{folder!r} holds no HTML page: build the site first.")
  return found
