"""The dev runner's children: one process group it owns, stopped together and completely.

Children run in a process group of their own, led by the first one started, so a Ctrl-C in the
terminal reaches only the runner (no child prints a KeyboardInterrupt traceback), and stopping
means one signal to the group — gunicorn's workers and anything else a child started included.
On Linux each child also gets SIGTERM if the runner itself dies, so nothing outlives a killed run.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class Stop(Exception):
    """SIGTERM (or SIGHUP) to the runner: stop like a Ctrl-C."""


def stop_on_signals() -> None:
    def handler(signum, _frame):
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)
    # Started in the background by a script, SIGINT arrives ignored; the runner still answers it.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_members(pgid: int) -> bool:
    """Any live (not zombie) process left in the group? /proc on Linux, a signal probe elsewhere."""
    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class ProcessGroup:
    """Children's output passes through the runner line by line, so it can hold it back while the
    banner is printed and drop it while everything stops (their goodbyes are not the user's news)."""

    def __init__(self, env: dict[str, str]):
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgid: int | None = None
        self.quiet = False
        self.stopped = False
        self._output = threading.Lock()

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        kwargs = {}
        if os.name == "posix":
            kwargs = {"process_group": self.pgid or 0,
                      "preexec_fn": _die_with_parent if sys.platform.startswith("linux") else None}
        proc = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, **kwargs)
        if self.pgid is None and os.name == "posix":
            self.pgid = proc.pid
        self.procs[name] = proc
        threading.Thread(target=self._relay, args=(proc,), daemon=True).start()
        return proc

    def _relay(self, proc: subprocess.Popen) -> None:
        for line in iter(proc.stdout.readline, b""):
            if not self.quiet:
                with self._output:
                    sys.stderr.buffer.write(line)
                    sys.stderr.flush()

    def say(self, text: str, stream=None) -> None:
        """Print from the runner without a child's line cutting through it."""
        with self._output:
            print(text, file=stream or sys.stderr, flush=True)

    def exited(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def _alive(self) -> bool:
        if any(p.poll() is None for p in self.procs.values()):
            return True
        return self.pgid is not None and _group_members(self.pgid)  # gunicorn's workers, say

    def _signal(self, sig: int) -> None:
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(sig)

    def stop(self, grace_s: float = 3.5) -> None:
        """SIGTERM to everyone, SIGKILL to whatever is left after `grace_s`; returns when all are gone."""
        if self.stopped or not self.procs:
            return
        self.stopped = self.quiet = True
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not interrupt the stopping
            signal.signal(sig, signal.SIG_IGN)
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._alive():
            self._signal(signal.SIGKILL)
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=1)
