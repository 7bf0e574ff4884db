"""The web admin's HTTPS server (cheroot behind a non-blocking front) against hostile clients.

Werkzeug's development server, used before, fails the first test: one TLS client that never finishes
its handshake blocks its accept loop, so the admin's sign-in never gets an answer."""
import socket
import ssl
import subprocess
import threading
import time

import pytest

from appliance.certs import ensure_certificate
from tests.webadmin.helpers import ADMIN, admin_client_for
from tests.webadmin.hostile import Hostile, sign_in
from webadmin import create_app
from webadmin.server import BIG_BODIES, AdminServer

pytestmark = pytest.mark.slow


@pytest.fixture
def served(runtime, tmp_path):
    """The box's web server on a loopback port, after the first-boot wizard."""
    app = create_app(runtime)
    admin_client_for(runtime, app)
    cert, key = ensure_certificate(tmp_path / "tls", "officebox")
    server = AdminServer("127.0.0.1", 0, app, cert, key)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop()
    thread.join(timeout=10)


def test_admin_signs_in_past_200_idle_and_half_open_connections_and_shutdown_is_quick(served):
    with Hostile("127.0.0.1", served.port, 200) as hostile:
        time.sleep(2)  # all parked, slowloris trickling
        assert hostile.open_count() >= 190
        status, location, _ = sign_in("127.0.0.1", served.port, ADMIN["login"], ADMIN["password"])
        assert status == 302 and location.endswith("/"), (status, location)
        wrong, _, _ = sign_in("127.0.0.1", served.port, ADMIN["login"], "not-the-password")
        assert wrong == 401
        started = time.monotonic()
        served.stop()
        assert time.monotonic() - started < 5


def _tls(port):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))


def test_slow_uploads_take_only_some_workers_and_the_next_is_told_busy(served):
    head = (b"POST /system/firmware HTTP/1.1\r\nHost: officebox\r\nContent-Length: 1000000\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    uploads = []
    try:
        for _ in range(BIG_BODIES):
            uploads.append(_tls(served.port))
            uploads[-1].sendall(head + b"x" * 100)
        time.sleep(1)
        extra = _tls(served.port)
        uploads.append(extra)
        extra.sendall(head)
        assert extra.recv(100).startswith(b"HTTP/1.1 503"), "an upload past the bound must be refused"
        status, _, _ = sign_in("127.0.0.1", served.port, ADMIN["login"], ADMIN["password"])
        assert status == 302
    finally:
        for sock in uploads:
            sock.close()


def test_slow_and_silent_clients_are_closed_after_the_timeout(served):
    from webadmin import server as web_server

    with Hostile("127.0.0.1", served.port, 30) as hostile:
        time.sleep(web_server.TIMEOUT + 3)  # the server closes them all; the attackers reconnect
        assert hostile.reopened >= 25, hostile.reopened


def test_no_server_banner_and_tls_failures_get_an_alert(served):
    with _tls(served.port) as tls:
        tls.sendall(b"GET /login HTTP/1.1\r\nHost: officebox\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(4096)
    assert head.startswith(b"HTTP/1.1 200") and b"\r\nserver:" not in head.lower(), head
    old = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{served.port}", "-tls1_1"],
                         input="", capture_output=True, text=True, timeout=20)
    assert "alert protocol version" in old.stdout + old.stderr, old.stdout + old.stderr
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: officebox\r\n\r\n")
        answer = plain.recv(300)
    assert answer.startswith(b"HTTP/1.1 400") and answer.endswith(b"open https:// instead.\r\n"), answer


def test_argon2_checks_are_bounded_and_the_overflow_is_told_to_retry(served):
    checks = served.app.extensions["officebox.password_checks"]
    checks.wait = 0.2
    held = [checks._slots.acquire() for _ in range(checks.LIMIT)]  # every slot busy
    try:
        status, _, _ = sign_in("127.0.0.1", served.port, ADMIN["login"], ADMIN["password"])
        assert status == 503
    finally:
        for _ in held:
            checks._slots.release()
    assert sign_in("127.0.0.1", served.port, ADMIN["login"], ADMIN["password"])[0] == 302
