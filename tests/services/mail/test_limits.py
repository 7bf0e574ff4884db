"""Connection caps of every mail listener (raw sockets, poplib)."""
import poplib
import socket

import pytest

from tests.services.mail.harness import RunningMail, client_tls, document


def _greeting(kind: str, port: int) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind in ("smtps", "pop3s", "imaps"):
        sock = client_tls().wrap_socket(sock)
    return sock, sock.recv(200)


@pytest.mark.parametrize("kind", ["smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps"])
def test_every_listener_caps_its_connections(ctx, kind):
    running = RunningMail(ctx, document(max_connections=4, max_connections_per_ip=2))
    sockets = []
    try:
        for _ in range(2):
            sock, greeting = _greeting(kind, running.port(kind))
            sockets.append(sock)
            assert greeting[:3] in (b"220", b"+OK", b"* O"), greeting
        sock, refusal = _greeting(kind, running.port(kind))
        sockets.append(sock)
        assert refusal.startswith((b"421 4.7.0", b"-ERR [SYS/TEMP]", b"* BYE [UNAVAILABLE]")), refusal
        for sock in sockets:
            sock.close()
        sockets.clear()
        for _ in range(10):  # closed ones are counted out again
            sock, greeting = _greeting(kind, running.port(kind))
            sock.close()
            if not greeting.startswith((b"421", b"-ERR", b"* BYE")):
                break
        assert greeting[:3] in (b"220", b"+OK", b"* O"), greeting
    finally:
        for sock in sockets:
            sock.close()
        running.stop()


def test_the_total_cap_counts_every_address(ctx):
    running = RunningMail(ctx, document(max_connections=2))
    try:
        first = poplib.POP3("127.0.0.1", running.port("pop3"), timeout=10)
        sock = socket.create_connection(("127.0.0.1", running.port("pop3")), timeout=10,
                                        source_address=("127.0.0.2", 0))
        assert sock.recv(100).startswith(b"+OK")
        with pytest.raises(poplib.error_proto, match="too many connections"):
            poplib.POP3("127.0.0.1", running.port("pop3"), timeout=10)
        sock.close()
        first.quit()
    finally:
        running.stop()
