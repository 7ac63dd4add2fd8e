"""Every entry point fails at start-up with one line naming the variable, and the README's commands
work exactly as written on a laptop."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

ENTRY_POINTS = {
    "cli": [PYTHON, "-m", "app.cli", "sync", "status"],
    "worker": [PYTHON, "-m", "app.cli", "worker"],
    "release": [PYTHON, "-m", "app.cli", "db", "upgrade"],
    "gunicorn": [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:0", "-c", "python:app.gunicorn_conf",
                 "app:create_app()"],
    "dev.py cli": [PYTHON, "dev.py", "cli", "sync", "status"],
}
MISTAKES = [
    ("POINTS_UNIT", "abc", "must be a whole number, got 'abc'"),
    ("SMAREGI_ENV", "staging", "must be sandbox or production, got 'staging'"),
    ("DATABASE_URL", "mysql://localhost/x", "must be a postgres://, postgresql:// or sqlite:/// URL"),
    ("DATABASE_URL", "postgresql://u@localhost:port/x", "is not a valid database URL"),
    ("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none", "cannot connect (connection failed: "),
    ("WEB_CONCURRENCY", "two", "must be a whole number, got 'two'"),
    ("LOG_LEVEL", "loud", "must be DEBUG, INFO, WARNING or ERROR, got 'loud'"),
]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHOPIFY_", "SMAREGI_", "POINTBRIDGE_", "TOKEN_", "DATABASE_URL", "POINTS_",
                                "WEB_", "LOG_LEVEL", "PORT"))}
    env.update({"POINTBRIDGE_ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}, **extra)
    return env


CASES = [(entry, *m) for entry in ENTRY_POINTS for m in MISTAKES if entry == "cli" or m[0] in
         {"POINTS_UNIT", "SMAREGI_ENV"} or m[2].startswith("cannot connect")]


@pytest.mark.parametrize("entry, variable, value, problem", CASES)
def test_each_entry_point_says_one_line_naming_the_variable(tmp_path, entry, variable, value, problem):
    proc = subprocess.run(ENTRY_POINTS[entry], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=clean_env(tmp_path, **{variable: value}))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr  # the whole output: no traceback, no gunicorn banner
    assert proc.stderr.startswith(f"pointbridge: configuration error: {variable}: {problem}")


def test_an_unreachable_database_never_shows_its_password(tmp_path):
    proc = subprocess.run(ENTRY_POINTS["cli"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=clean_env(tmp_path, DATABASE_URL="postgresql://admin:s3cr3t-pw@127.0.0.1:1/x"))
    assert proc.returncode == 2 and "s3cr3t-pw" not in proc.stderr
    assert proc.stderr.startswith("pointbridge: configuration error: DATABASE_URL: cannot connect")


def readme_operations() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Operations", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_the_readme_operations_commands_work_as_written(tmp_path):
    """On a laptop with nothing set but the database the test owns, each command succeeds."""
    env = {k: v for k, v in clean_env(tmp_path).items() if k != "POINTBRIDGE_ENV"}
    commands = readme_operations()
    assert commands and all(c.startswith("python3 dev.py cli ") for c in commands)
    ran = 0
    for command in commands:
        args = shlex.split(re.sub(r"\[[^\]]*\]", "", command))  # without the optional parts
        if any(re.fullmatch(r"[A-Z_]{2,}|…", a) for a in args):
            continue  # a placeholder for the reader to fill in (LINK_ID, CUSTOMER_ID)
        args[0] = PYTHON
        if args[3:4] == ["worker"]:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(4)
            assert proc.poll() is None, proc.communicate()[1]
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0 and "Traceback" not in err
        else:
            proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, (command, proc.stderr)
            assert "configuration error" not in proc.stderr
        ran += 1
    assert ran >= 4
