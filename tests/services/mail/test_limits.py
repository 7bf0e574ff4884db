"""Connection caps of every mail listener (raw sockets, imaplib, poplib)."""
import email
import email.policy
import imaplib
import os
import poplib
import socket
import time
from email.message import EmailMessage

import pytest

from services.mail import service as mail_service
from tests.services.mail.harness import PASSWORDS, RunningMail, client_tls, document


def _greeting(kind: str, port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if kind in ("smtps", "pop3s", "imaps"):
        sock = client_tls().wrap_socket(sock)
    return sock, sock.recv(200)


@pytest.mark.parametrize("kind", ["smtp", "submission", "smtps"])
def test_every_smtp_listener_caps_its_connections(ctx, kind):
    running = RunningMail(ctx, document(max_connections=4, max_connections_per_ip=2))
    sockets = []
    try:
        for _ in range(2):
            sock, greeting = _greeting(kind, running.port(kind))
            sockets.append(sock)
            assert greeting[:3] == b"220", greeting
        sock, refusal = _greeting(kind, running.port(kind))
        sockets.append(sock)
        assert refusal.startswith(b"421 4.7.0"), refusal
        for sock in sockets:
            sock.close()
        sockets.clear()
        for _ in range(10):  # closed ones are counted out again
            sock, greeting = _greeting(kind, running.port(kind))
            sock.close()
            if not greeting.startswith(b"421"):
                break
        assert greeting[:3] == b"220", greeting
    finally:
        for sock in sockets:
            sock.close()
        running.stop()


@pytest.mark.parametrize("kind", ["pop3", "pop3s", "imap", "imaps"])
def test_dovecot_keeps_at_most_max_connections_waiting_to_sign_in(ctx, kind):
    """Dovecot's login process limit: past max_connections the oldest connection not signed in is dropped,
    whatever its address; the newer ones are served."""
    running = RunningMail(ctx, document(max_connections=4))
    sockets = []
    try:
        for n in range(6):
            sock, greeting = _greeting(kind, running.port(kind), source=f"127.0.0.{10 + n}")
            sockets.append(sock)
            assert greeting.startswith((b"+OK", b"* OK")), greeting
        for sock in sockets[:2]:
            assert b"Connection queue full" in sock.recv(200)
        command, answer = (b"CAPA", b"+OK") if kind.startswith("pop3") else (b"a CAPABILITY", b"* CAPABILITY")
        for sock in sockets[2:]:
            sock.sendall(command + b"\r\n")
            assert sock.recv(200).startswith(answer)
    finally:
        for sock in sockets:
            sock.close()
        running.stop()


def test_sessions_per_user_and_address_are_capped(ctx):
    running = RunningMail(ctx, document(max_connections_per_ip=2))
    clients = []
    try:
        for _ in range(2):
            client = imaplib.IMAP4_SSL("127.0.0.1", running.port("imaps"), ssl_context=client_tls(), timeout=10)
            assert client.login("bob", PASSWORDS["bob"])[0] == "OK"
            clients.append(client)
        third = imaplib.IMAP4_SSL("127.0.0.1", running.port("imaps"), ssl_context=client_tls(), timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match="LIMIT. Maximum number of connections from user\\+IP exceeded"):
            third.login("bob", PASSWORDS["bob"])
        pop = poplib.POP3_SSL("127.0.0.1", running.port("pop3s"), context=client_tls(), timeout=10)
        pop.user("carol")
        assert pop.pass_(PASSWORDS["carol"]).startswith(b"+OK")  # another user from the same address
        pop.quit()
    finally:
        for client in clients:
            client.logout()
        running.stop()


@pytest.mark.parametrize("kind", ["imap", "pop3s"])
def test_a_connection_not_signed_in_in_time_is_closed_a_signed_in_one_stays(ctx, monkeypatch, kind):
    """The pre-login gate closes a connection that has not signed in after PRELOGIN_SECONDS (even one
    that talks); a signed-in session is not timed."""
    monkeypatch.setattr(mail_service, "PRELOGIN_SECONDS", 2.0)
    running = RunningMail(ctx, document())
    idle = talking = None
    try:
        port = running.port(kind)
        idle, greeting = _greeting(kind, port)
        talking, _ = _greeting(kind, port)
        assert greeting.startswith((b"+OK", b"* OK")), greeting
        if kind == "imap":
            session = imaplib.IMAP4("127.0.0.1", port, timeout=10)
            session.starttls(client_tls())
            session.login("bob", PASSWORDS["bob"])
        else:
            session = poplib.POP3_SSL("127.0.0.1", port, context=client_tls(), timeout=10)
            session.user("bob")
            session.pass_(PASSWORDS["bob"])
        command = b"CAPA\r\n" if kind.startswith("pop3") else b"a NOOP\r\n"
        deadline = time.monotonic() + 10
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                talking.sendall(command)
                closed = talking.recv(200) == b""
            except OSError:
                closed = True
            time.sleep(0.2)
        assert closed, "a connection not signed in outlived the pre-login timeout"
        idle.settimeout(5)
        try:
            assert idle.recv(200) == b""
        except ConnectionResetError:
            pass
        if kind == "imap":
            assert session.noop()[0] == "OK"
            session.logout()
        else:
            assert session.stat()[0] == 0
            session.quit()
    finally:
        for sock in (idle, talking):
            if sock is not None:
                sock.close()
        running.stop()


def test_behind_the_gate_plaintext_sign_in_is_refused_even_from_the_box_itself(ctx):
    """The gate's PROXY header makes every IMAP/POP3 connection a proxied one for Dovecot: secured by TLS
    only, also from the box's own address to itself (which Dovecot alone counts as secured)."""
    running = RunningMail(ctx, document())
    try:
        client = imaplib.IMAP4("127.0.0.1", running.port("imap"), timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login("bob", PASSWORDS["bob"])
        client.starttls(client_tls())
        assert client.login("bob", PASSWORDS["bob"])[0] == "OK"
        client.logout()
    finally:
        running.stop()


def test_a_large_message_passes_the_gate_byte_for_byte(ctx):
    """6 MB of random bytes (an attachment) fetched over IMAPS and POP3S through the gate's splices."""
    running = RunningMail(ctx, document())
    try:
        blob = os.urandom(6 * 1024 * 1024)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@elsewhere.test", "bob@example.com", "big"
        message.set_content("see attachment")
        message.add_attachment(blob, maintype="application", subtype="octet-stream", filename="blob.bin")
        running.call(running.service.submit("a@elsewhere.test", ["bob@example.com"], message))
        imap = imaplib.IMAP4_SSL("127.0.0.1", running.port("imaps"), ssl_context=client_tls(), timeout=30)
        imap.login("bob", PASSWORDS["bob"])
        imap.select("INBOX", readonly=True)
        raw = imap.fetch("1", "(BODY.PEEK[])")[1][0][1]
        imap.logout()
        pop = poplib.POP3_SSL("127.0.0.1", running.port("pop3s"), context=client_tls(), timeout=30)
        pop.user("bob")
        pop.pass_(PASSWORDS["bob"])
        popped = b"\r\n".join(pop.retr(1)[1]) + b"\r\n"
        pop.quit()
        for data in (raw, popped):
            parsed = email.message_from_bytes(data, policy=email.policy.default)
            attachment = next(parsed.iter_attachments())
            assert attachment.get_content() == blob
        assert popped == raw
    finally:
        running.stop()
