import smtplib
import socket

import pytest

from tests.services.mail.harness import PASSWORD, PASSWORDS, RunningMail, client_tls, document, stored


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document(
        max_message_size=100_000,
        aliases=[{"name": "sales", "targets": ["bob", "carol"]}, {"name": "info", "targets": ["alice"]}]))
    yield running
    running.stop()


def inbox(mail, login):
    return stored(mail.ctx, login)


def submit(mail, user="alice", password=PASSWORD) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10)
    client.starttls(context=client_tls())
    client.login(user, password)
    return client


def test_inbound_mail_for_a_local_user_lands_in_the_maildir(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        refused = client.sendmail("someone@elsewhere.test", ["bob.b@example.com"],
                                  b"Subject: hello\r\n\r\nline one\r\n.leading dot\r\n")
    assert refused == {}
    [entry] = inbox(mail, "bob")
    body = entry.read_bytes()
    assert b"Received: from" in body and b"\n.leading dot\n" in body and b"\r\n" not in body
    assert entry.parent.name == "new"
    assert not list((entry.parent.parent / "tmp").iterdir())


def test_distribution_list_delivers_to_every_member(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.sendmail("x@elsewhere.test", ["SALES@Example.com"], b"Subject: list\r\n\r\nhi\r\n")
    assert len(inbox(mail, "bob")) == 1 and len(inbox(mail, "carol")) == 1 and not inbox(mail, "alice")


def test_unknown_local_recipient_is_refused(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.ehlo()
        client.mail("x@elsewhere.test")
        code, message = client.rcpt("nobody@example.com")
    assert code == 550 and b"no such mailbox" in message


def test_unauthenticated_relay_is_refused(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, message = client.rcpt("victim@foreign.test")
    assert code == 554 and b"Relay access denied" in message


def test_submission_requires_starttls_before_auth_and_mail(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        code, message = client.docmd("AUTH", "PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtMQ==")
        assert code == 530  # aiosmtpd: STARTTLS first
        code, _ = client.docmd("MAIL", "FROM:<alice@example.com>")
        assert code == 530


def test_auth_without_tls_on_port_25_is_refused(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        code, message = client.docmd("AUTH", "PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtMQ==")
    assert code == 538 and b"Encryption required" in message


def test_wrong_password_fails_and_right_one_works(mail):
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        submit(mail, password="not-the-password")
    assert err.value.smtp_code == 535
    client = submit(mail, user="bob.b@example.com", password=PASSWORDS["bob"])  # e-mail address as user name
    client.quit()
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as client:  # AUTH LOGIN too
        client.starttls(context=client_tls())
        client.ehlo()
        client.user, client.password = "carol", "wrong-password"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("LOGIN", client.auth_login)
        client.password = PASSWORDS["carol"]
        assert client.auth("LOGIN", client.auth_login)[0] == 235


def test_authenticated_user_sends_to_another_user(mail):
    client = submit(mail)
    client.sendmail("alice@example.com", ["carol@example.com"], b"Subject: from alice\r\n\r\nhi carol\r\n")
    client.quit()
    [entry] = inbox(mail, "carol")
    assert b"with ESMTPSA" in entry.read_bytes()


def test_implicit_tls_port_465(mail):
    with smtplib.SMTP_SSL("127.0.0.1", mail.port("smtps"), timeout=10, context=client_tls()) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("alice@example.com", ["bob@example.com"], b"Subject: x\r\n\r\nx\r\n")
        client.login("alice", PASSWORD)
        client.sendmail("alice@example.com", ["bob@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert len(inbox(mail, "bob")) == 1


def test_authenticated_relay_without_smarthost_is_refused_clearly(mail):
    client = submit(mail)
    client.ehlo()
    client.mail("alice@example.com")
    code, message = client.rcpt("friend@foreign.test")
    client.quit()
    assert code == 550 and b"no smarthost" in message


def test_oversize_message_gets_552_and_nothing_is_stored(mail):
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 120
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        # declared with SIZE (smtplib does it): refused at MAIL FROM
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            client.sendmail("x@elsewhere.test", ["alice@example.com"], big)
        assert err.value.smtp_code == 552 and b"100000 bytes" in err.value.smtp_error
        # not declared: the data is read to the end, then refused
        assert client.mail("x@elsewhere.test")[0] == 250
        assert client.rcpt("alice@example.com")[0] == 250
        code, message = client.data(big)
        assert code == 552 and message.startswith(b"5.3.4 Message too big")
        # the session stays usable
        client.sendmail("x@elsewhere.test", ["alice@example.com"], b"Subject: small\r\n\r\nok\r\n")
    assert len(inbox(mail, "alice")) == 1


def raw_session(port: int, lines: list[bytes]) -> list[bytes]:
    """Send raw lines, return the reply to each (after the banner)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        replies = []
        for line in lines:
            sock.sendall(line + b"\r\n")
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            replies.append(reply)
        return replies


def test_malformed_commands_get_syntax_errors(mail):
    replies = raw_session(mail.port("smtp"), [
        b"HELO", b"EHLO client.test", b"MAIL alice", b"RCPT TO:<bob@example.com>", b"FOO bar",
        b"MAIL FROM:<not an address>", b"MAIL FROM:<x@elsewhere.test>", b"RCPT TO:<>",
        b"RCPT TO:<bob@example.com>", b"DATA extra", b"X" * 2000, b"NOOP"])
    codes = [r[:3] for r in replies]
    assert codes[0] == b"501"            # HELO without a name
    assert codes[1] == b"250"
    assert codes[2] == b"501"            # MAIL without FROM:
    assert codes[3] == b"503"            # RCPT before MAIL
    assert codes[4] == b"500"            # unknown command
    assert codes[5] in (b"501", b"553")  # broken address
    assert codes[6] == b"250"
    assert codes[7] in (b"501", b"553")  # empty recipient
    assert codes[8] == b"250"
    assert codes[9] == b"501"            # DATA takes no argument
    assert codes[10] == b"500"           # line too long
    assert codes[11] == b"250"           # still alive


def test_lan_clients_relay_only_when_allowed_or_listed_as_trusted_devices(ctx):
    doc = document(smarthost={"host": "127.0.0.1", "port": 9})
    doc["network"] = {"lan": {"interface": "lo", "address": "127.0.0.1/8"}}
    running = RunningMail(ctx, doc)

    def rcpt_code() -> int:
        with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=10) as client:
            client.ehlo()
            client.mail("scanner@example.com")
            return client.rcpt("friend@foreign.test")[0]
    try:
        assert rcpt_code() == 554  # off by default: a LAN address alone is no permission to send out
        for mail in ({"relay_devices": ["127.0.0.2"]}, {"relay_devices": ["127.0.0.1"]}, {"relay_from_lan": True}):
            doc["mail"] = document(smarthost={"host": "127.0.0.1", "port": 9}, **mail)["mail"]
            running.reload(doc)
            assert rcpt_code() == (554 if mail.get("relay_devices") == ["127.0.0.2"] else 250), mail
    finally:
        running.stop()


def test_signed_in_users_send_only_as_themselves_or_their_aliases(mail):
    client = submit(mail, user="bob", password=PASSWORDS["bob"])
    for sender in ("bob.b@example.com", "bob@example.com", "sales@example.com", ""):
        reply = client.mail(sender)
        assert reply[0] == 250, (sender, reply)
        client.rset()
    for sender in ("alice@example.com", "info@example.com", "ceo@foreign.test"):
        code, message = client.mail(sender)
        assert code == 553 and b"not an address of user bob" in message, sender
        client.rset()
    client.quit()


def test_postmaster_without_domain_reaches_the_admins(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.sendmail("x@elsewhere.test", ["postmaster"], b"Subject: abuse report\r\n\r\n!\r\n")
    assert len(inbox(mail, "alice")) == 1


def test_a_looping_message_is_refused(mail):
    hops = b"".join(b"Received: from hop%d.test by next.test; Mon, 23 Nov 2026 09:00:00 +0000\r\n" % n
                    for n in range(31))
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("x@elsewhere.test", ["alice@example.com"], hops + b"Subject: loop\r\n\r\n.\r\n")
        assert err.value.smtp_code == 554 and b"looping" in err.value.smtp_error
        client.sendmail("x@elsewhere.test", ["alice@example.com"], hops[:2000] + b"Subject: ok\r\n\r\nx\r\n")
    assert len(inbox(mail, "alice")) == 1
