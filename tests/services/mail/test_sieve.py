"""Sieve filtering at delivery (fileinto, vacation, reject) and ManageSieve on its own port, with
sieve-connect as the client, smtplib to send and imaplib to read."""
import imaplib
import os
import shutil
import smtplib
import socket
import subprocess

import pytest

from tests.services.mail.harness import PASSWORDS, REMOTE, RunningMail, client_tls, document, stored, wait_for

pytestmark = pytest.mark.skipif(shutil.which("sieve-connect") is None, reason="needs sieve-connect")


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    try:
        yield running
    finally:
        running.stop()


def sieve_connect(mail, login: str, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    """Run sieve-connect against the box's ManageSieve port (STARTTLS, then PLAIN) as `login`."""
    read, write = os.pipe()
    os.write(write, ((password or PASSWORDS[login]) + "\n").encode())
    os.close(write)
    try:
        return subprocess.run(
            ["sieve-connect", "--server", "127.0.0.1", "--port", str(mail.port("managesieve")), "--user", login,
             "--passwordfd", str(read), "--notlsverify", "--noclearauth", *args],
            pass_fds=(read,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(read)


def install(mail, tmp_path, login: str, script: str) -> None:
    local = tmp_path / f"{login}.sieve"
    local.write_text(script)
    done = sieve_connect(mail, login, "--upload", "--localsieve", str(local), "--remotesieve", "rules")
    assert done.returncode == 0, done.stderr
    done = sieve_connect(mail, login, "--activate", "--remotesieve", "rules")
    assert done.returncode == 0, done.stderr
    listed = sieve_connect(mail, login, "--list")
    assert listed.returncode == 0 and "rules" in listed.stdout and "ACTIVE" in listed.stdout.upper(), listed


def send(mail, sender_login: str, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=client_tls())
        smtp.login(sender_login, PASSWORDS[sender_login])
        smtp.sendmail(f"{sender_login}@example.com", [to],
                      f"From: {sender_login}@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())


def folder_subjects(mail, login: str, folder: str) -> list[str]:
    with imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=30) as client:
        client.login(login, PASSWORDS[login])
        typ, _ = client.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            return []
        typ, data = client.search(None, "ALL")
        found = []
        for num in data[0].split():
            typ, parts = client.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            found.append(parts[0][1].decode().strip().removeprefix("Subject: "))
        return found


FILING = """require ["fileinto", "mailbox"];
if header :contains "subject" "invoice" {
  fileinto :create "Invoices";
}
"""


def test_script_uploaded_over_managesieve_files_mail_into_its_folder(mail, tmp_path):
    install(mail, tmp_path, "bob", FILING)
    send(mail, "alice", "bob@example.com", "invoice 2026-17")
    send(mail, "alice", "bob@example.com", "lunch?")
    assert folder_subjects(mail, "bob", "Invoices") == ["invoice 2026-17"]
    assert folder_subjects(mail, "bob", "INBOX") == ["lunch?"]


def test_managesieve_refuses_a_bad_script_and_a_wrong_password(mail, tmp_path):
    bad = tmp_path / "bad.sieve"
    bad.write_text('fileinto "x";\n')  # fileinto without require
    done = sieve_connect(mail, "bob", "--upload", "--localsieve", str(bad), "--remotesieve", "bad")
    assert done.returncode != 0
    assert "bad" not in sieve_connect(mail, "bob", "--list").stdout
    done = sieve_connect(mail, "bob", "--list", password="wrong password")
    assert done.returncode != 0


def read_capabilities(reader) -> bytes:
    lines = []
    for _ in range(30):
        lines.append(reader.readline())
        if lines[-1].startswith((b"OK", b"NO", b"BYE")) or not lines[-1]:
            break
    return b"".join(lines)


def test_managesieve_signs_in_only_after_starttls(mail):
    with socket.create_connection(("127.0.0.1", mail.port("managesieve")), timeout=10,
                                  source_address=(REMOTE, 0)) as sock:
        reader = sock.makefile("rb")
        greeting = read_capabilities(reader)
        assert b'"STARTTLS"' in greeting and b'"SASL" ""' in greeting  # no mechanism before TLS
        sock.sendall(b'AUTHENTICATE "PLAIN" "AGJvYgBib2Itc2VjcmV0LTIy"\r\n')
        assert reader.readline().startswith(b"NO")
        sock.sendall(b"STARTTLS\r\n")
        assert reader.readline().startswith(b"OK")
        with client_tls().wrap_socket(sock) as tls:
            assert b'"SASL" "PLAIN LOGIN"' in read_capabilities(tls.makefile("rb"))


VACATION = """require ["vacation"];
vacation :days 3 :subject "Out of office" "Back on Monday.";
"""


def test_vacation_answers_each_sender_once_within_its_days(mail, tmp_path):
    install(mail, tmp_path, "carol", VACATION)
    send(mail, "alice", "carol@example.com", "first")
    assert wait_for(lambda: folder_subjects(mail, "alice", "INBOX")) == ["Out of office"]
    send(mail, "alice", "carol@example.com", "second")
    send(mail, "bob", "carol@example.com", "from bob")
    assert wait_for(lambda: folder_subjects(mail, "bob", "INBOX")) == ["Out of office"]
    assert folder_subjects(mail, "alice", "INBOX") == ["Out of office"]  # not again within 3 days
    assert folder_subjects(mail, "carol", "INBOX") == ["first", "second", "from bob"]  # and kept


REJECT = """require ["reject"];
if header :contains "subject" "prize" {
  reject "No prizes, thank you.";
}
"""


def test_reject_refuses_the_message_and_tells_the_sender(mail, tmp_path):
    install(mail, tmp_path, "bob", REJECT)
    send(mail, "alice", "bob@example.com", "you won a prize")
    send(mail, "alice", "bob@example.com", "meeting")
    assert folder_subjects(mail, "bob", "INBOX") == ["meeting"]
    notices = wait_for(lambda: folder_subjects(mail, "alice", "INBOX"))
    assert len(notices) == 1 and "you won a prize" in notices[0]
    assert not stored(mail.ctx, "bob", "Junk")
