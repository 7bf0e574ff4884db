"""Proxy sign-in: Squid's helper script (run here as Squid runs it, with the system's python3) against
the appliance's sign-in socket, checking the user directory's argon2 hashes."""
from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from appliance.users import User, hash_password
from services.proxy.signin import MAX_FAILURES, SignInServer
from tests.services.dhcp.helpers import LoopThread

HELPER = Path(__file__).resolve().parents[3] / "services/proxy/basic_auth.py"
PASSWORD = "pass word 100% sûr"
MAIN = "main password"
mode = {"login": False}


@pytest.fixture
def server(tmp_path):
    users = [User(login="ann", full_name="Ann", password_hash=hash_password(MAIN),
                  proxy_password_hash=hash_password(PASSWORD)),
             User(login="old", full_name="Gone", proxy_password_hash=hash_password(PASSWORD), enabled=False)]
    clock = [1000.0]
    runner = LoopThread()
    srv = SignInServer(tmp_path / "auth.sock", lambda: users, clock=lambda: clock[0],
                       use_login_password=lambda: mode["login"])
    runner.call(srv.start())
    yield srv, clock
    runner.call(srv.close())
    runner.close()


def helper(socket_path: Path, *lines: str) -> list[str]:
    done = subprocess.run(["/usr/bin/python3", str(HELPER), str(socket_path)], input="".join(f"{x}\n" for x in lines),
                          capture_output=True, text=True, timeout=60)
    return done.stdout.splitlines()


def test_helper_answers_ok_only_for_an_enabled_user_and_the_right_password(server):
    srv, _ = server
    answers = helper(srv.path, f"ann {quote(PASSWORD)}", f"ANN {quote(PASSWORD)}", "ann wrong",
                     f"old {quote(PASSWORD)}", f"nobody {quote(PASSWORD)}", "", "ann", "garbage %%% \x01",
                     "x" * 10000)
    assert answers == ["OK", "OK", "ERR", "ERR", "ERR", "ERR", "ERR", "ERR", "ERR"]
    assert srv.path.stat().st_mode & 0o777 == 0o600


def test_the_main_password_opens_the_proxy_only_when_the_admin_chose_so(server):
    """Before: the main (web, mail) password was the proxy password, sent in clear Basic auth on the LAN."""
    from services.proxy import signin as module
    srv, _ = server
    assert helper(srv.path, f"ann {quote(MAIN)}", f"ann {quote(PASSWORD)}") == ["ERR", "OK"]
    mode["login"] = True
    try:
        assert helper(srv.path, f"ann {quote(MAIN)}", f"ann {quote(PASSWORD)}") == ["OK", "ERR"]
    finally:
        mode["login"] = False
    module._DUMMY_HASH = None
    assert helper(srv.path, "nobody whatever") == ["ERR"]
    assert module._DUMMY_HASH is not None  # an unknown login paid for an argon2 check too


def test_repeated_failures_lock_the_login_for_a_while(server):
    srv, clock = server
    assert helper(srv.path, *["ann nope"] * MAX_FAILURES) == ["ERR"] * MAX_FAILURES
    assert helper(srv.path, f"ann {quote(PASSWORD)}") == ["ERR"]  # locked: not even checked
    assert srv.refused == 1
    clock[0] += 301
    assert helper(srv.path, f"ann {quote(PASSWORD)}") == ["OK"]


def test_helper_without_the_appliance_says_err(tmp_path):
    assert helper(tmp_path / "missing.sock", "ann x")[0].startswith("ERR")
