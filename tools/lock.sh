#!/usr/bin/env bash
# Regenerate both hash-pinned locks from pyproject.toml (Python 3.11, Linux x86_64):
#   requirements.lock      the runtime: what production installs (pip install --require-hashes -r requirements.lock)
#   requirements-dev.lock  tests and tools only (pytest, vcrpy, ruff, …); dev.py installs both
# Re-run after adding or changing a dependency in pyproject.toml (or after merging a branch that did).
# Versions already in the locks are kept unless pyproject.toml no longer allows them, so a re-run
# changes only what it must; `tools/lock.sh --upgrade` moves everything to the newest allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8  # the resolver is pinned too: the same inputs give the same locks
TOOL_VENV="${POINTBRIDGE_LOCK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pointbridge-lock/uv-$UV_VERSION}"
if [ ! -x "$TOOL_VENV/bin/uv" ]; then  # a throw-away venv outside the project, made once
  python3 -m venv --clear "$TOOL_VENV"
  "$TOOL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

compile=("$TOOL_VENV/bin/uv" pip compile --quiet --generate-hashes --python-version 3.11
         --python-platform x86_64-unknown-linux-gnu
         --custom-compile-command "tools/lock.sh" "$@" pyproject.toml)

"${compile[@]}" -o requirements.lock
# Tests and tools, resolved with the runtime pins as constraints (one version of each shared
# package) and without repeating them: the two files together are the whole set, each once.
mapfile -t runtime < <(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/\1/p' requirements.lock)
"${compile[@]}" --extra test -c requirements.lock "${runtime[@]/#/--no-emit-package=}" -o requirements-dev.lock
echo "tools/lock.sh: requirements.lock ($(grep -c '==' requirements.lock) packages)," \
     "requirements-dev.lock ($(grep -c '==' requirements-dev.lock) packages)"
