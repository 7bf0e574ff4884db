import poplib
import smtplib
import socket
import time

import pytest

from tests.services.mail.harness import PASSWORD, PASSWORDS, RemotePOP3, RunningMail, client_tls, document, stored


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    try:
        for n in range(3):
            running.service.accept_now("x@elsewhere.test", ["bob@example.com"],
                                       f"Subject: note {n}\r\n\r\nline 1\r\n.dotted\r\nline 3\r\n".encode())
        yield running
    finally:
        running.stop()


def pop(mail, login="bob", timeout: float = 10) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=timeout)
    client.stls(context=client_tls())
    client.user(login)
    client.pass_(PASSWORDS[login])
    return client


def test_message_sent_by_one_user_is_read_by_another_over_pop3(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as smtp:
        smtp.starttls(context=client_tls())
        smtp.login("alice", PASSWORD)
        smtp.sendmail("alice@example.com", ["carol@example.com"], b"Subject: lunch?\r\n\r\nat noon\r\n")
    client = pop(mail, "carol")
    count, size = client.stat()
    assert count == 1
    _, lines, octets = client.retr(1)
    assert b"Subject: lunch?" in lines and lines[-1] == b"at noon"
    assert octets == size
    client.quit()


def test_stat_list_uidl_top_retr_with_byte_stuffing(mail):
    client = pop(mail)
    count, total = client.stat()
    assert count == 3
    listing = client.list()[1]
    sizes = [int(x.split()[1]) for x in listing]
    assert sum(sizes) == total
    uids = [x.split()[1] for x in client.uidl()[1]]
    assert len(set(uids)) == 3
    assert client.uidl(2).split()[2] == uids[1]
    _, lines, _ = client.retr(2)
    assert b"Subject: note 1" in lines and b".dotted" in lines  # poplib removes the stuffing
    assert len(b"\r\n".join(lines) + b"\r\n") == sizes[1]
    _, top, _ = client.top(1, 1)
    assert top[-1] == b"line 1" and b"line 3" not in top
    client.quit()


def test_deletions_apply_at_quit_only_and_rset_undoes_them(mail):
    client = pop(mail)
    client.dele(1)
    with pytest.raises(poplib.error_proto):
        client.retr(1)
    assert client.stat()[0] == 2
    client.rset()
    assert client.stat()[0] == 3
    client.dele(2)
    client.close()  # connection dropped without QUIT: nothing is deleted
    for _ in range(100):  # the server notices the lost connection and releases the maildrop
        try:
            client = pop(mail)
            break
        except poplib.error_proto:
            time.sleep(0.05)
    assert len(stored(mail.ctx, "bob")) == 3
    assert client.stat()[0] == 3
    client.dele(2)
    client.quit()
    remaining = stored(mail.ctx, "bob")
    assert len(remaining) == 2


def test_maildrop_is_locked(mail):
    first = pop(mail)
    with pytest.raises(poplib.error_proto, match="IN-USE"):
        pop(mail, timeout=60)  # Dovecot waits for the lock a while before it answers
    first.quit()
    pop(mail).quit()


def test_password_needs_tls_and_must_be_right(mail):
    client = RemotePOP3("127.0.0.1", mail.port("pop3"), timeout=10)
    assert b"STLS" in b" ".join(client.capa().keys() and [k.encode() for k in client.capa()])
    with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
        client.user("bob")
        client.pass_(PASSWORDS["bob"])  # the right password, refused before TLS
    client.stls(context=client_tls())
    client.user("bob")
    with pytest.raises(poplib.error_proto, match="AUTH"):
        client.pass_("wrong password")
    client.user("bob.b@example.com")
    assert client.pass_(PASSWORDS["bob"]).startswith(b"+OK")
    client.quit()


def test_pop3s_implicit_tls(mail):
    client = poplib.POP3_SSL("127.0.0.1", mail.port("pop3s"), timeout=10, context=client_tls())
    client.user("bob")
    client.pass_(PASSWORDS["bob"])
    assert client.stat()[0] == 3
    client.quit()


def test_malformed_commands_get_err(mail):
    """Before login Dovecot answers -ERR and hangs up after a few bad commands; the next client is served."""
    lines = (b"STAT", b"RETR 1", b"BOGUS", b"LIST x", b"\xff\xfe", b"A" * 400, b"", b"TOP 1")
    for start in range(0, len(lines), 2):
        with socket.create_connection(("127.0.0.1", mail.port("pop3")), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"+OK")
            for line in lines[start:start + 2]:
                sock.sendall(line + b"\r\n")
                assert reader.readline().startswith(b"-ERR"), line
            sock.sendall(b"QUIT\r\n")
            assert reader.readline().startswith(b"+OK")


def test_malformed_commands_after_login_get_err(mail):
    client = pop(mail)
    for command in ("RETR 0", "RETR 99", "DELE abc", "TOP 1 x", "TOP 1", "LIST 4", "UIDL -1"):
        with pytest.raises(poplib.error_proto):
            client._shortcmd(command)
    assert client.stat()[0] == 3
    client.quit()
