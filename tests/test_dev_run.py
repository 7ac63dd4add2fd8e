"""`python3 dev.py run` as a newcomer uses it: start, stop with Ctrl-C or SIGTERM, start twice, restart.

Each test starts the real runner (stand-ins, gunicorn, worker, storefront) on free ports with its
own SQLite file, and checks what the user would: the banner, the one line when it stops, that no
process is left and every port is free again, and that a restart keeps Shopify's codes and the
balance consistent with the app's database.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
START_S = 120  # the shared CI machine is slow to boot gunicorn; a laptop takes a few seconds


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def dev_env(tmp_path: Path, ports: list[int], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHOPIFY_", "SMAREGI_", "POINTBRIDGE_", "TOKEN_", "DATABASE_URL", "PORT"))}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'pointbridge.db'}",
                "POINTBRIDGE_WEB_PORT": str(ports[0]), "POINTBRIDGE_SMAREGI_PORT": str(ports[1]),
                "POINTBRIDGE_SHOPIFY_PORT": str(ports[2]), "POINTBRIDGE_STOREFRONT_PORT": str(ports[3])})
    env.update(extra)
    return env


class Run:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.instance = Path(env["DATABASE_URL"].removeprefix("sqlite:///")).parent
        self.ports = [int(env[f"POINTBRIDGE_{n}_PORT"]) for n in ("WEB", "SMAREGI", "SHOPIFY", "STOREFRONT")]
        self.proc = subprocess.Popen([sys.executable, "dev.py", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.banner = threading.Event()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.out, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err, False), daemon=True).start()

    def _read(self, stream, into, is_stdout):
        for line in stream:
            into.append(line.rstrip("\n"))
            if is_stdout and "Ctrl-C stops everything" in line:
                self.banner.set()

    def wait_banner(self) -> None:
        deadline = time.monotonic() + START_S
        while not self.banner.is_set() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.1)
        assert self.banner.is_set(), "\n".join(self.err[-20:])

    def settled_balance(self) -> int:
        """The demo's own background work is done (its orders' refund and cancellation were sent
        ORDER_CHANGES_AFTER_S after start, the import and the grants ran): Taro's balance then."""
        from app.dev.run import ORDER_CHANGES_AFTER_S

        time.sleep(ORDER_CHANGES_AFTER_S + 1)
        state, last, steady_since = self.instance / "standins" / "shopify.json", None, time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = (state.read_text() if state.exists() else "", self.storefront("balance")["points"]["balance"])
            if now != last:
                last, steady_since = now, time.monotonic()
            elif time.monotonic() - steady_since >= 3:
                return now[1]
            time.sleep(0.5)
        raise AssertionError("the dev run never settled")

    def descendants(self) -> set[int]:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = set(), [self.proc.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    def stop(self, sig: int) -> tuple[float, list[str]]:
        before = len(self.err)
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        took = time.monotonic() - started
        time.sleep(0.2)  # the reader threads catch up
        return took, self.err[before:]

    def storefront(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[3]}/apps/points/{path}", method="POST" if body else "GET",
            data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json", "Cookie": "dev_customer=8840734670934"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def shopify_codes(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.ports[2]}/_emulator/pointbridge-dev.myshopify.com/state"
        with urllib.request.urlopen(url, timeout=10) as response:
            return {d["code"]: d["status"] for d in json.loads(response.read())["discounts"]}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def assert_stopped_cleanly(run: Run, children: set[int], took: float, lines: list[str]) -> None:
    assert run.proc.returncode == 0
    assert took <= 5, f"stopping took {took:.1f} s"
    assert lines == ["dev: stopped"]
    assert not any("Traceback" in line for line in run.err)
    assert [pid for pid in children if alive(pid)] == []
    assert all(port_free(p) for p in run.ports)


def convert(run: Run, points: int = 100) -> dict:
    return run.storefront("conversions", {"points": points, "idempotency_key": str(uuid.uuid4())})["conversion"]


def test_a_second_copy_stops_at_once_and_ctrl_c_stops_everything(tmp_path):
    ports = free_ports(4)
    first = Run(dev_env(tmp_path, ports))
    try:
        first.wait_banner()
        children = first.descendants()
        assert len(children) >= 5  # stand-ins, gunicorn master + worker, sync worker, storefront
        balance = first.settled_balance()
        state = tmp_path / "instance" / "standins" / "shopify.json"
        state_before = state.read_text()

        started = time.monotonic()
        second = subprocess.run([sys.executable, "dev.py", "run"], cwd=ROOT, env=first.env, capture_output=True,
                                text=True, timeout=60)
        assert time.monotonic() - started < 10
        assert second.returncode == 1
        assert second.stdout == ""  # no banner
        assert len(second.stderr.strip().splitlines()) == 1
        assert "another `dev.py run`" in second.stderr and str(first.proc.pid) in second.stderr

        # Another database but the same ports: the port check names the variable that moves it.
        other = subprocess.run([sys.executable, "dev.py", "run"], cwd=ROOT, env=dev_env(tmp_path / "b", ports),
                               capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and other.stdout == ""
        assert other.stderr.strip().splitlines() == [
            f"dev: port {ports[0]} (web) is in use; stop what holds it, or choose another with "
            f"POINTBRIDGE_WEB_PORT={ports[0] + 1000} python3 dev.py run"]
        assert not (tmp_path / "b" / "instance" / "pointbridge.db").exists()

        # Nothing of the attempts reached the running copy.
        assert state.read_text() == state_before
        assert first.storefront("balance")["points"]["balance"] == balance

        took, lines = first.stop(signal.SIGINT)
        assert_stopped_cleanly(first, children, took, lines)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()


def test_sigterm_stops_everything_and_a_restart_keeps_codes_and_balance(tmp_path):
    ports = free_ports(4)
    run = Run(dev_env(tmp_path, ports))
    try:
        run.wait_banner()
        balance = run.settled_balance()
        old = convert(run)
        assert old["status"] == "completed" and old["balance_after"] == balance - 100
        children = run.descendants()
        took, lines = run.stop(signal.SIGTERM)
        assert_stopped_cleanly(run, children, took, lines)

        run = Run(run.env)
        run.wait_banner()
        again = convert(run)  # the app's Shopify token is still valid: no 401, no "no points were used"
        assert again["status"] == "completed"
        assert again["balance_after"] == balance - 200  # the balance goes on from where it was, not back
        codes = run.shopify_codes()
        assert codes[old["code"]] == "ACTIVE" and codes[again["code"]] == "ACTIVE"
        listed = {c["code"] for c in run.storefront("conversions")["conversions"]}
        assert {old["code"], again["code"]} <= listed
        children = run.descendants()
        took, lines = run.stop(signal.SIGINT)
        assert_stopped_cleanly(run, children, took, lines)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()


def test_a_lost_stand_in_state_starts_both_fresh(tmp_path):
    """If the stand-ins' files are gone, the app's database goes too: no code the platform forgot."""
    ports = free_ports(4)
    env = dev_env(tmp_path, ports)
    db = tmp_path / "instance" / "pointbridge.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"")  # a database left from an earlier run, without the stand-ins' state
    run = Run(env)
    try:
        run.wait_banner()
        assert any("starting pointbridge.db fresh" in line for line in run.err)
        assert run.storefront("balance")["points"]["balance"] >= 1250  # the seeded 1250, plus demo orders' points
        run.stop(signal.SIGTERM)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()


@pytest.mark.parametrize("variable, value", [("POINTS_UNIT", "abc"), ("SMAREGI_ENV", "prod"),
                                             ("DATABASE_URL", "mysql://x/y"), ("POINTBRIDGE_WEB_PORT", "http"),
                                             ("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")])
def test_a_bad_setting_is_one_line_naming_it(tmp_path, variable, value):
    proc = subprocess.run([sys.executable, "dev.py", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dev_env(tmp_path, free_ports(4), **{variable: value}))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pointbridge: configuration error: {variable}: ")
