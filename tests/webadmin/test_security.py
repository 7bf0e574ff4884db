"""Web admin security parts: secret key file, session registry, lock-out bounds, bounded password checks."""
import stat
import threading
import time

import pytest

from webadmin.security import Busy, Lockout, PasswordChecks, SessionRegistry, load_secret_key


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_damaged_secret_is_replaced(tmp_path):
    path = tmp_path / "webadmin-secret.key"
    path.write_bytes(b"short")
    path.chmod(0o644)
    key = load_secret_key(tmp_path)
    assert len(key) == 32 and path.read_bytes() == key and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sessions_end_on_password_change_absolute_age_and_close():
    clock = Clock()
    registry = SessionRegistry(clock)
    hashes = {"ann": "h1"}
    sid = registry.open("ann", "h1")
    assert registry.lookup(sid, hashes.get) == "ann"
    assert registry.lookup("forged", hashes.get) is None
    hashes["ann"] = "h2"
    assert registry.lookup(sid, hashes.get) is None and registry.lookup(sid, lambda _: "h1") is None  # gone
    sid = registry.open("ann", "h2")
    for _ in range(int(registry.MAX_AGE // registry.IDLE_TIMEOUT) + 1):  # active, but too old in the end
        clock.now += registry.IDLE_TIMEOUT - 1
        registry.lookup(sid, hashes.get)
    assert registry.lookup(sid, hashes.get) is None
    sid = registry.open("ann", "h2")
    registry.close(sid)
    assert registry.lookup(sid, hashes.get) is None
    assert registry.lookup(registry.open("gone", None), lambda _: False) is None  # deleted or disabled user


def test_session_registry_is_bounded():
    registry = SessionRegistry(Clock())
    first = registry.open("ann", "h")
    for _ in range(registry.MAX_SESSIONS):
        registry.open("ann", "h")
    assert len(registry._items) == registry.MAX_SESSIONS and registry.lookup(first, lambda _: "h") is None


def test_lockout_memory_is_bounded_and_keys_are_independent():
    clock = Clock()
    lockout = Lockout(clock)
    for n in range(Lockout.MAX_KEYS + 50):
        lockout.failed(("login", f"guess{n}"))
    assert len(lockout._fails) <= Lockout.MAX_KEYS
    for _ in range(Lockout.FREE_TRIES):
        lockout.failed(("login", "admin"), ("addr", "192.0.2.7"))
    assert lockout.wait_time(("login", "admin")) == 2 and lockout.wait_time(("addr", "192.0.2.7")) == 2
    assert lockout.wait_time(("login", "other"), ("addr", "192.0.2.8")) == 0
    lockout.succeeded(("login", "admin"))
    assert lockout.wait_time(("login", "admin")) == 0 and lockout.wait_time(("addr", "192.0.2.7")) == 2


def test_password_checks_run_at_most_limit_at_once_and_the_rest_are_told_busy():
    checks = PasswordChecks(limit=2, wait=0.3)
    running, peak, busy = [0], [0], []
    lock = threading.Lock()

    def check():
        try:
            with checks.slot():
                with lock:
                    running[0] += 1
                    peak[0] = max(peak[0], running[0])
                time.sleep(0.5)
                with lock:
                    running[0] -= 1
        except Busy:
            busy.append(1)

    threads = [threading.Thread(target=check) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert peak[0] == 2 and len(busy) == 4


@pytest.mark.parametrize("path", ["/login", "/setup/"])
def test_pages_carry_no_server_banner(client, path):
    assert "Server" not in client.get(path).headers
