"""Headless Chromium (Debian's `chromium`) for end-to-end page tests.

In CI a missing browser fails the test (.ci/run installs it); on a laptop without it, skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium); browser tests skipped")
    return path


def rendered_dom(url: str, *, wait_ms: int = 8000, screenshot: str | None = None) -> str:
    """The DOM after the page's scripts ran (network and timers included, up to `wait_ms`)."""
    with tempfile.TemporaryDirectory() as profile:
        args = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}"]
        if screenshot:
            subprocess.run([*args, f"--screenshot={screenshot}", "--window-size=900,1100", url],
                           capture_output=True, timeout=90)
        result = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    return result.stdout
