"""The Shopify extensions' own checks, run with the project's pinned npm packages:
Shopify's theme check on the theme app extension, the customer-account extension's vitest
suite, and its production bundle. In CI a missing Node/npm fails; on a laptop they skip."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .conftest import ROOT


def npm(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("npm")
    if exe is None or not (ROOT / "node_modules").exists():
        reason = "npm not installed" if exe is None else "node_modules missing (python3 dev.py test installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the extensions' npm tooling: {reason}")
        pytest.skip(f"{reason}; extension checks skipped")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_theme_app_extension_passes_shopifys_theme_check():
    result = npm("run", "-s", "theme-check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)/warning(s)" in result.stdout


def test_customer_account_extension_unit_tests_pass():
    result = npm("test", "-s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


def test_customer_account_extension_bundle_builds():
    result = npm("run", "-s", "build")
    assert result.returncode == 0, result.stdout + result.stderr
    for target in ("PointsPage", "ProfileBlock"):
        bundle = ROOT / "extensions" / "pointbridge-account" / "dist" / f"{target}.js"
        assert bundle.stat().st_size > 1000
        assert "customer-account" in bundle.read_text()  # the app's endpoints are compiled in
