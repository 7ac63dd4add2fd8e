#!/usr/bin/env python3
"""The two commands a newcomer needs, with nothing installed but Python 3.11+.

    python3 dev.py run     # web + worker + Smaregi/Shopify stand-ins + dev storefront, on SQLite
    python3 dev.py test    # the test suite (Postgres tests run when Postgres answers)
    python3 dev.py serve   # web + worker only, for `shopify app dev` (real Shopify, your settings)
    python3 dev.py cli …   # the operations CLI (`python -m app.cli …`) against the dev database

Both create `.venv/` from the hash-pinned `requirements.lock` and `requirements-dev.lock` on first
use (and again whenever either changes), so nobody activates a virtualenv or installs a package by
hand. Standard library only: this file runs before any dependency exists.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# The runtime lock and the tests-and-tools lock (tools/lock.sh writes both from pyproject.toml).
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-dev.lock")
STAMP = VENV / ".lock-sha256"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _lock_digest() -> str:
    text = b"".join(lock.read_bytes() for lock in LOCKS) + (ROOT / "pyproject.toml").read_bytes()
    return hashlib.sha256(text).hexdigest()


def ensure_venv() -> Path:
    """Create or refresh .venv so it matches the lock exactly; return its python."""
    python = BIN / "python"
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == _lock_digest():
        return python
    if not python.exists():
        print("• creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("• installing the locked dependencies (first run only)", flush=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    _quiet([*pip, "install", "--require-hashes", *(arg for lock in LOCKS for arg in ("-r", str(lock)))])
    # The app itself, editable and without resolving again: the lock already pinned everything.
    _quiet([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)])
    STAMP.write_text(_lock_digest())
    return python


def ensure_node_modules() -> None:
    """The extensions' tooling (theme check, the customer-account build, vitest), from package-lock.json.
    Without npm on this machine the JS checks are skipped by the tests, each with its reason."""
    npm = shutil.which("npm")
    lock = ROOT / "package-lock.json"
    stamp = ROOT / "node_modules" / ".lock-sha256"
    if npm is None or not lock.exists():
        return
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    print("• installing the locked npm packages for the extensions (first run only)", flush=True)
    _quiet([npm, "ci", "--no-audit", "--no-fund"])
    stamp.write_text(digest)


def _quiet(command: list[str]) -> None:
    """Run pip, showing its output only if it fails (some machines' pip config is chatty)."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"dev.py: '{' '.join(command[1:5])} …' failed (exit {result.returncode})")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "setup", "serve", "cli"}:
        print(__doc__.strip())
        return 2
    python = ensure_venv()
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if command == "setup":
        return 0
    if command == "test":
        ensure_node_modules()
        return subprocess.call([str(python), "-m", "pytest", *rest])
    env = {**os.environ, "POINTBRIDGE_ENV": os.environ.get("POINTBRIDGE_ENV", "development")}
    module = {"run": ["app.dev.run"], "serve": ["app.dev.run", "--no-stand-ins"], "cli": ["app.cli"]}[command]
    args = [str(python), "-m", *module, *rest]
    if os.name == "posix":
        # Become the runner rather than wrap it: Ctrl-C and SIGTERM to this pid reach it directly.
        os.execve(str(python), args, env)
    return subprocess.call(args, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
