"""Headless Chromium driven over the DevTools protocol on a pipe: the site's browser tests.

Standard library only: Chromium started with `--remote-debugging-pipe` reads
commands on its file descriptor 3 and writes replies and events on 4, each a
JSON message ended by a NUL byte. `Browser.open(url)` loads a page and
records every request it makes; `Page.evaluate(js)` runs an expression and
returns its value; `Page.screenshot(path)` writes a PNG.

`chromium()` finds the browser; `make test` installs Debian's `chromium`
package where none is found (see the Makefile's `browser` target).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import tempfile
import time

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
  """The path of a Chromium-family browser, or None."""
  override = os.environ.get("REAL_JAX_CHROMIUM")
  if override:
    return override
  for name in CANDIDATES:
    path = shutil.which(name)
    if path:
      return path
  return None


class BrowserError(RuntimeError):
  pass


class Browser:
  """One headless browser process; close it (or use `with`)."""

  def __init__(self, path: str | None = None, *, timeout: float = 60.0):
    path = path or chromium()
    if path is None:
      raise BrowserError("no Chromium found (install Debian's `chromium`, or set "
                         "REAL_JAX_CHROMIUM)")
    self.timeout = timeout
    self._profile = tempfile.mkdtemp(prefix="real_jax_chromium_")
    to_child_r, self._to_child = os.pipe()
    self._from_child, from_child_w = os.pipe()

    args = [path, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
            "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--allow-file-access-from-files",
            f"--user-data-dir={self._profile}", "--window-size=1280,900", "about:blank"]
    # The pipe's ends go to the browser's fds 3 and 4 through copies above 9
    # (so that no dup2 overwrites the other end), by posix_spawn: a fork of
    # this multithreaded (JAX) process would risk a deadlock.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_r, from_child_w)]
    log = os.environ.get("REAL_JAX_BROWSER_LOG") or os.devnull
    actions = [(os.POSIX_SPAWN_DUP2, high[0], 3), (os.POSIX_SPAWN_DUP2, high[1], 4),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)]
    self._pid = os.posix_spawn(path, args, os.environ, file_actions=actions)
    self._returncode = None
    for fd in (to_child_r, from_child_w, *high):
      os.close(fd)
    self._buffer = b""
    self._next_id = 0
    self.events: list[dict] = []

  # -- the protocol ----------------------------------------------------------

  def _read_message(self, deadline: float) -> dict:
    while b"\0" not in self._buffer:
      if time.monotonic() > deadline:
        raise BrowserError("Chromium did not answer in time")
      if self._exited():
        raise BrowserError(f"Chromium exited (status {self._returncode})")
      ready, _, _ = select.select([self._from_child], [], [], 0.2)
      if ready:
        chunk = os.read(self._from_child, 1 << 20)
        if not chunk:
          raise BrowserError("Chromium closed its pipe")
        self._buffer += chunk
    message, _, self._buffer = self._buffer.partition(b"\0")
    return json.loads(message)

  def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
    """Sends one command; returns its result (events that arrive meanwhile are kept)."""
    self._next_id += 1
    message = {"id": self._next_id, "method": method, "params": params or {}}
    if session:
      message["sessionId"] = session
    os.write(self._to_child, json.dumps(message).encode() + b"\0")
    deadline = time.monotonic() + self.timeout
    while True:
      reply = self._read_message(deadline)
      if reply.get("id") == self._next_id:
        if "error" in reply:
          raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})
      self.events.append(reply)

  def wait_event(self, method: str, session: str, timeout: float | None = None) -> dict:
    deadline = time.monotonic() + (timeout or self.timeout)
    for i, e in enumerate(self.events):
      if e.get("method") == method and e.get("sessionId") == session:
        return self.events.pop(i)
    while True:
      e = self._read_message(deadline)
      if e.get("method") == method and e.get("sessionId") == session:
        return e
      self.events.append(e)

  # -- pages -----------------------------------------------------------------

  def open(self, url: str) -> Page:
    """A new tab at `url`, loaded, with every request it made recorded."""
    target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    page = Page(self, session)
    self.send("Network.enable", session=session)
    self.send("Page.enable", session=session)
    self.send("Page.navigate", {"url": url}, session=session)
    self.wait_event("Page.loadEventFired", session)
    return page

  def _exited(self) -> bool:
    if self._returncode is None:
      pid, status = os.waitpid(self._pid, os.WNOHANG)
      if pid:
        self._returncode = status
    return self._returncode is not None

  def close(self) -> None:
    try:
      if not self._exited():
        try:
          self.send("Browser.close")
        except (BrowserError, OSError):
          pass
        deadline = time.monotonic() + 10
        while not self._exited() and time.monotonic() < deadline:
          time.sleep(0.05)
        if not self._exited():
          os.kill(self._pid, 9)
          os.waitpid(self._pid, 0)
          self._returncode = -9
    finally:
      for fd in (self._to_child, self._from_child):
        try:
          os.close(fd)
        except OSError:
          pass
      shutil.rmtree(self._profile, ignore_errors=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class Page:
  def __init__(self, browser: Browser, session: str):
    self.browser, self.session = browser, session

  def evaluate(self, expression: str):
    """The value of a JavaScript expression (awaited if it is a promise)."""
    result = self.browser.send("Runtime.evaluate", {
        "expression": expression, "returnByValue": True, "awaitPromise": True},
        session=self.session)
    if "exceptionDetails" in result:
      raise BrowserError(f"{expression[:80]}...: {result['exceptionDetails']}")
    return result["result"].get("value")

  def wait_for(self, expression: str, timeout: float = 30.0):
    """Polls `expression` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
      value = self.evaluate(expression)
      if value:
        return value
      if time.monotonic() > deadline:
        raise BrowserError(f"timed out waiting for: {expression}")
      time.sleep(0.1)

  def requests(self) -> list[str]:
    """Every URL this page has requested so far."""
    self.browser.send("Runtime.evaluate", {"expression": "0"}, session=self.session)
    return [e["params"]["request"]["url"] for e in self.browser.events
            if e.get("method") == "Network.requestWillBeSent"
            and e.get("sessionId") == self.session]

  def screenshot(self, path: str, selector: str | None = None) -> str:
    """A PNG of the page's viewport, or of the element `selector` picks, whole."""
    params: dict = {"format": "png"}
    if selector:
      box = self.evaluate(f"""(() => {{ const r = document.querySelector({json.dumps(selector)})
          .getBoundingClientRect(); return [r.left + window.scrollX, r.top + window.scrollY,
          r.width, r.height]; }})()""")
      params.update(clip=dict(zip(("x", "y", "width", "height"), box, strict=True), scale=1),
                    captureBeyondViewport=True)
    data = self.browser.send("Page.captureScreenshot", params, session=self.session)["data"]
    with open(path, "wb") as f:
      f.write(base64.b64decode(data))
    return path
