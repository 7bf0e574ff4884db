"""Web admin security parts: secret key file, session registry, lock-out bounds, bounded password
checks, and the first-boot setup code (console-printed, hashed 0600, gone after the wizard)."""
import stat
import threading
import time

import pytest

from tests.webadmin.helpers import csrf_of, post, run_wizard
from webadmin.security import Busy, Lockout, PasswordChecks, SessionRegistry, SetupCode, load_secret_key


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


def test_setup_code_is_hashed_0600_and_one_time(tmp_path):
    setup = SetupCode(tmp_path)
    code = setup.issue()
    stored = setup.path.read_text()
    assert stat.S_IMODE(setup.path.stat().st_mode) == 0o600
    assert stored.startswith("$argon2") and code.replace("-", "") not in stored
    assert setup.matches(code) and setup.matches(code.lower().replace("-", " ")) and not setup.matches("ABCD-EFGH")
    newer = setup.issue()
    assert setup.matches(newer) and not setup.matches(code)  # a restart prints a new code; the old one is void
    assert setup.shown.read_text() == newer + "\n" and stat.S_IMODE(setup.shown.stat().st_mode) == 0o600
    setup.discard()
    assert not setup.matches(newer) and not setup.active() and not setup.shown.exists()


def _wizard_refused(client, runtime, code, message):
    before = runtime.store.current_id()
    answer = run_wizard(client, setup_code=code)
    assert answer.status_code == 400 and 'id="e-setup_code"' in answer.get_data(as_text=True)
    assert message in answer.get_data(as_text=True)
    assert runtime.store.current_id() == before and not runtime.store.current().config.system.initialized


def test_the_wizard_needs_the_console_code(client, runtime):
    _wizard_refused(client, runtime, "", "not the setup code")
    _wizard_refused(client, runtime, "WXYZ-2345", "not the setup code")
    page = client.get("/setup/").get_data(as_text=True)
    assert 'name="setup_code"' in page
    assert run_wizard(client).status_code == 302  # with a code just issued, as printed at start
    assert not SetupCode(runtime.ctx.data_dir).active()  # void once the box is set up


def test_no_active_code_and_guessing_are_refused(client, runtime):
    token = csrf_of(client, "/setup/")
    data = {"csrf_token": token, "setup_code": "ABCD-EFGH", "login": "admin"}
    answer = client.post("/setup/", data=data)
    assert answer.status_code == 400 and "no setup code is active" in answer.get_data(as_text=True)
    code = SetupCode(runtime.ctx.data_dir).issue()
    for _ in range(Lockout.FREE_TRIES):
        post(client, "/setup/", {"setup_code": "WRONG-CODE"})
    locked = post(client, "/setup/", {"setup_code": code})
    assert locked.status_code == 400 and "too many wrong setup codes" in locked.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/login", "/setup/"])
def test_pages_carry_no_server_banner(client, path):
    assert "Server" not in client.get(path).headers
