"""Garbage in: parsers raise only their own errors, and the live servers keep answering."""
import random
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mail import imapmime
from services.mail.imapwire import ParseError, parse_set, tokenize
from tests.services.mail.harness import RunningMail, document


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_imap_tokenizer_accepts_or_refuses_cleanly(data):
    try:
        tokens = tokenize(data)
    except ParseError:
        return
    assert isinstance(tokens, list)


@given(st.text(alphabet="0123456789:*,x-", max_size=30), st.integers(min_value=0, max_value=50))
@settings(max_examples=300, deadline=None)
def test_sequence_sets_are_bounded(text, largest):
    result = parse_set(text, largest)
    assert result is None or all(n >= 1 for n in result)


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    running.service.accept_now("x@elsewhere.test", ["bob@example.com"], b"Subject: keep\r\n\r\nme\r\n")
    yield running
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
    assert len(mail.service.maildir("bob").scan()) == 1


@given(st.lists(st.sampled_from([b"Content-Type: multipart/mixed; boundary=b\r\n", b"\r\n", b"--b\r\n", b"--b--\r\n",
                                 b"Content-Type: message/rfc822\r\n", b"x: y\r\n", b"body\r\n", b"\xff\x00",
                                 b"Content-Type: text/plain; charset*=utf-8''%E9\r\n"]), max_size=40))
@settings(max_examples=200, deadline=None)
def test_mime_structure_of_any_message(chunks):
    tree = imapmime.parse(b"".join(chunks))
    assert imapmime.bodystructure(tree).startswith(b"(")
    assert imapmime.envelope(tree).startswith(b"(")
