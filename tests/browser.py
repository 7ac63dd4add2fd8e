"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe.

`--remote-debugging-pipe` makes Chromium read commands on fd 3 and answer on fd 4 (NUL-separated
JSON), so tests can load a page, wait for the DOM, click and type, with no driver or extra package.
In CI a missing browser fails the test (.ci/run installs it); on a laptop without it, skip.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=900,1100"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium); browser tests skipped")
    return path


def _high(fd: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    def __init__(self):
        self.profile = tempfile.TemporaryDirectory()
        # The child's ends are moved above fd 10 first, so that placing them on 3 and 4 in the
        # child cannot overwrite one with the other.
        to_chrome_r, self._to_chrome = (_high(fd) for fd in os.pipe())
        self._from_chrome, from_chrome_w = (_high(fd) for fd in os.pipe())

        def fds():  # in the child: our pipes become fds 3 and 4 (kept open: pass_fds)
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={self.profile.name}",
                                      "--remote-debugging-pipe", "about:blank"], preexec_fn=fds,
                                     pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def eval(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("text", "script error"))
        return result["result"].get("value")

    def before_scripts(self, source: str) -> None:
        """Run `source` in every page before its own scripts (e.g. to stub App Bridge)."""
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source}, self.session)

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, self.session)
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, expression: str, timeout_s: float = 10) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for: {expression}")

    def text(self, selector: str = "body") -> str:
        return self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def click(self, selector: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path: str) -> None:
        import base64

        data = self.send("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.send("Browser.close")
        self.proc.wait(10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self.profile.cleanup()


# What the Polaris script does for our purpose: defines the elements and renders them in their own
# shadow root. Fields show nothing of their light DOM (so the native fallback inside is not shown) and
# give value / checked / error; the rest show their children in a slot, and a submit s-button submits
# its form when it is clicked itself (a click bubbling up from the hidden native button inside is not its own).
POLARIS_STUB = """['s-number-field', 's-text-field', 's-text-area', 's-select', 's-checkbox',
 's-search-field'].forEach(function (tag) {
  customElements.define(tag, class extends HTMLElement {
    constructor() { super(); this.attachShadow({mode: 'open'}).innerHTML = '<span>polaris</span>'; }
    get value() { return this._value == null ? '' : String(this._value); }
    set value(v) { this._value = v; }
    get checked() { return !!this._checked; }
    set checked(v) { this._checked = !!v; }
  });
});
['s-button', 's-badge', 's-banner', 's-table', 's-table-header-row', 's-table-header', 's-table-body', 's-table-row',
 's-table-cell', 's-grid', 's-box', 's-heading', 's-text'].forEach(function (tag) {
  customElements.define(tag, class extends HTMLElement {
    constructor() {
      super();
      this.attachShadow({mode: 'open'}).innerHTML = tag === 's-button' ? '<button><slot></slot></button>'
                                                                     : '<slot></slot>';
      this.addEventListener('click', function (ev) {
        if (ev.target === this && this.getAttribute('type') === 'submit') this.closest('form').requestSubmit();
      });
    }
  });
});"""


def with_polaris(browser):
    browser.send("Page.enable", None, browser.session)  # scripts for new documents only run with it
    browser.before_scripts(POLARIS_STUB)


def visible(browser, selector: str) -> bool:
    return browser.eval(f"document.querySelector({selector!r}).checkVisibility()")


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()
