"""The built site in headless Chromium, offline: formulas typeset, the explorer live.

  python tests/check_site.py docs/_build/html [--screenshots docs/explorer]

`make docs` runs it after building (so `make test` does). It opens the
derivations page and the gradient explorer from disk, checks that every
formula was typeset, that no page requested anything but its own files, and
that the explorer's curves follow its controls (`tests/explorer_checks.py`);
with `--screenshots`, it writes the explorer's two committed screenshots.
Without a Chromium it says so and exits 0: `make test` installs one where
it can (Debian's `chromium`), and the explorer's own tests report the skip.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import browser
import explorer_checks
import site_check

# Pages whose formulas must be typeset: the derivations and the first notebook.
FORMULA_PAGES = ("derivations.html", "notebooks/01_gradient_dynamics.html")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("site", help="the built site (docs/_build/html)")
  parser.add_argument("--screenshots", help="folder to write the explorer's screenshots to")
  args = parser.parse_args(argv)
  site = os.path.abspath(args.site)
  found = site_check.check_site(site)
  if found:
    print(f"external loads: {found}")
    return 1
  if browser.chromium() is None:
    print("check_site: no Chromium; the browser checks did not run (make test installs "
          "Debian's chromium where it can)")
    return 0
  start = time.perf_counter()
  with browser.Browser() as b:
    formulas = 0
    for name in FORMULA_PAGES:
      page = b.open("file://" + os.path.join(site, name))
      page.wait_for("document.querySelectorAll('mjx-container').length > 0")
      page.wait_for("[...document.querySelectorAll('.math')]"
                    ".every(e => e.querySelector('mjx-container'))")
      formulas += page.evaluate("document.querySelectorAll('.math').length")
      outside = [u for u in page.requests() if not u.startswith(("file:", "data:"))]
      if outside:
        print(f"{name} requested {outside}")
        return 1
    explorer = "file://" + os.path.join(site, "explorer", "index.html")
    checked = explorer_checks.run(b, explorer, screenshots=args.screenshots)
  print(f"check_site: {formulas} formulas on {len(FORMULA_PAGES)} pages typeset offline, no external request; explorer: "
        f"{checked} ({time.perf_counter() - start:.0f}s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
