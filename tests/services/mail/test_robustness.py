"""Garbage in: the live servers (aiosmtpd, Dovecot's POP3 and IMAP) keep answering, no mail is lost."""
import random
import socket

import pytest

from tests.services.mail.harness import RunningMail, document, stored


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    try:
        running.service.accept_now("x@elsewhere.test", ["bob@example.com"], b"Subject: keep\r\n\r\nme\r\n")
        yield running
    finally:
        running.stop()


def garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b"")
    if kind == 1:
        words = [b"MAIL", b"RCPT", b"DATA", b"USER", b"PASS", b"RETR", b"a1", b"FETCH", b"{5}", b"(", b")",
                 b'"', b"*", b"1:*", b"BODY[", b"<>", b"\x00", b"STARTTLS", b"STLS", b"AUTH", b"LOGIN"]
        return b" ".join(rng.choice(words) for _ in range(rng.randrange(1, 8)))
    if kind == 2:
        return b"x" * rng.randrange(500, 5000)
    return b""


@pytest.mark.parametrize("kind,alive", [("smtp", (b"NOOP", b"250")), ("pop3", (b"QUIT", b"+OK")),
                                        ("imap", (b"z CAPABILITY", b"* CAPABILITY"))])
def test_servers_survive_random_garbage(mail, kind, alive):
    rng = random.Random(6)
    for _round in range(8):
        with socket.create_connection(("127.0.0.1", mail.port(kind)), timeout=10) as sock:
            sock.recv(4096)
            for _ in range(15):
                try:
                    sock.sendall(garbage(rng) + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break  # the server hung up on a client making too many errors: fine
            sock.settimeout(0.2)
            try:
                while sock.recv(65536):
                    pass
            except (TimeoutError, ConnectionError):
                pass
    with socket.create_connection(("127.0.0.1", mail.port(kind)), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(alive[0] + b"\r\n")
        assert reader.readline().startswith(alive[1])
    assert len(stored(mail.ctx, "bob")) == 1
