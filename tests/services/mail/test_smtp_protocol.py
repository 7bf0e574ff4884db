"""SMTP protocol details checked with swaks (Debian `swaks`) and smtplib: bounces, PIPELINING,
ENHANCEDSTATUSCODES, HELO names, SMTPUTF8."""
import smtplib
import socket
import subprocess

import pytest

from tests.services.mail.harness import PASSWORD, RunningMail, client_tls, document, stored


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    yield running
    running.stop()


def inbox(mail, login):
    return stored(mail.ctx, login)


def swaks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "--timeout", "10", *args], capture_output=True, text=True, timeout=60)


def test_bounces_with_the_null_sender_are_accepted_on_every_port(mail):
    result = swaks("--server", f"127.0.0.1:{mail.port('smtp')}", "--from", "<>", "--to", "bob@example.com",
                   "--header", "Subject: Undelivered Mail Returned to Sender")
    assert result.returncode == 0, result.stdout
    assert "MAIL FROM:<>" in result.stdout and "<-  250" in result.stdout.split("RCPT TO")[1]
    result = swaks("--server", f"127.0.0.1:{mail.port('submission')}", "--tls", "--auth", "PLAIN",
                   "--auth-user", "alice", "--auth-password", PASSWORD, "--from", "<>", "--to", "carol@example.com")
    assert result.returncode == 0, result.stdout
    with smtplib.SMTP_SSL("127.0.0.1", mail.port("smtps"), timeout=10, context=client_tls()) as client:
        client.login("alice", PASSWORD)
        assert client.sendmail("<>", ["bob@example.com"], b"Subject: read receipt\r\n\r\nseen\r\n") == {}
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.ehlo()
        assert client.mail("")[0] == 250
        assert client.docmd("MAIL", "FROM:<>")[0] == 503  # still one transaction at a time
        assert client.rcpt("nobody@example.com")[0] == 550  # the usual recipient checks
        assert client.rcpt("victim@foreign.test")[0] == 554  # and no relaying
        assert client.rcpt("bob@example.com")[0] == 250
    [first, second] = sorted(inbox(mail, "bob"), key=lambda e: e.read_bytes().count(b"receipt"))
    assert b"Undelivered" in first.read_bytes() and b"read receipt" in second.read_bytes()
    assert len(inbox(mail, "carol")) == 1


def test_pipelining_and_enhanced_status_codes_are_advertised_and_work(mail):
    result = swaks("--server", f"127.0.0.1:{mail.port('smtp')}", "--pipeline", "--from", "x@elsewhere.test",
                   "--to", "bob@example.com,carol@example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250-PIPELINING" in result.stdout and "250-ENHANCEDSTATUSCODES" in result.stdout
    assert len(inbox(mail, "bob")) == len(inbox(mail, "carol")) == 1
    with socket.create_connection(("127.0.0.1", mail.port("smtp")), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"RCPT TO:<bob@example.com>\r\nEHLO client.test\r\nNOOP\r\nFROB\r\nMAIL FROM:<a@b.test>\r\n"
                     b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: piped\r\n\r\n"
                     b"x\r\n.\r\nRSET\r\nVRFY bob\r\nQUIT\r\n")
        replies = [line.rstrip() for line in reader]
    final = [r for r in replies if r[3:4] == b" "]
    assert final[0].startswith(b"503 5.5.1 ")  # RCPT before MAIL (before EHLO too)
    assert final[1] == b"250 HELP" and all(r.startswith(b"250-") for r in replies[1:final.index(final[1]) + 1][:-1])
    codes = [r[:9] for r in final[2:]]
    assert codes == [b"250 2.0.0", b"500 5.5.2", b"250 2.1.0", b"550 5.1.1", b"250 2.1.5", b"354 End d",
                     b"250 2.0.0", b"250 2.0.0", b"252 2.0.0", b"221 2.0.0"], final
    assert len(inbox(mail, "bob")) == 2


@pytest.mark.parametrize("helo", [b"EHLO evil\x1b[2J\rX-Spoofed: yes", b"HELO box\x00.test", b"EHLO a\tb"])
def test_control_characters_in_helo_never_reach_stored_mail(mail, helo):
    with socket.create_connection(("127.0.0.1", mail.port("smtp")), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(helo + b"\r\n")
        reply = reader.readline()
        assert reply.startswith(b"501 5.5.4"), reply
        sock.sendall(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        assert reader.readline().startswith(b"503")  # no transaction without a valid greeting
        sock.sendall(b"EHLO good.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: s\r\n\r\nx\r\n.\r\n")
        assert [reader.readline()[:3] for _ in range(4)] == [b"250", b"250", b"354", b"250"]
    for entry in inbox(mail, "bob"):
        data = entry.read_bytes()
        assert b"Received: from good.test " in data
        assert not any(c < 0x20 and c not in (0x09, 0x0A) for c in data) and b"Spoofed" not in data


def test_smtputf8_is_offered_and_works_and_plain_ascii_sessions_keep_ascii_addresses(mail):
    subject = "Réunion à 10 h – ordre du jour"
    message = f"From: José <josé@elsewhere.test>\r\nSubject: {subject}\r\n\r\nçà\r\n".encode()
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        assert client.sendmail("josé@elsewhere.test", ["bob@example.com"], message, mail_options=["SMTPUTF8"]) == {}
        code, text = client.docmd("MAIL FROM:<ré@elsewhere.test>")  # no SMTPUTF8 parameter: refused clearly
        assert code == 553 and b"5.6.7" in text and b"SMTPUTF8" in text
        client.rset()
        assert client.sendmail("a@elsewhere.test", ["bob@example.com"], message) == {}  # 8-bit headers
    data = [e.read_bytes() for e in inbox(mail, "bob")]
    assert len(data) == 2 and all(subject.encode() in d for d in data)
