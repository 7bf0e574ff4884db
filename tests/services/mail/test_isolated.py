"""Mail in its own process, as the appliance runs it (appliance.servicehost): SMTP is served by the child,
Dovecot by the supervisor, the web admin's calls go through the typed client (appliance.clients), and a
killed mail process is restarted with mail flowing again (smtplib, imaplib)."""
import imaplib
import os
import signal
import smtplib
import subprocess

import pytest

from appliance.clients import client_for
from services.mail import QueueBusy
from tests.services.mail.harness import PASSWORDS, RunningMail, client_tls, document, free_port, wait_for


@pytest.fixture
def mail(ctx):
    ports = {f"lab_{kind}_port": free_port() for kind in ("smtp", "submission", "smtps")}
    running = RunningMail(ctx, document(smarthost={"host": "127.0.0.1", "port": free_port(), "security": "none"},
                                        **ports), isolated=True)
    try:
        yield running
    finally:
        running.stop()


def listener_pid(port: int) -> int | None:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return None


def send(mail, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=client_tls())
        smtp.login("alice", PASSWORDS["alice"])
        smtp.sendmail("alice@example.com", [to], f"Subject: {subject}\r\n\r\nhello\r\n".encode())


def inbox_count(mail, login: str) -> int:
    with imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=30) as client:
        client.login(login, PASSWORDS[login])
        return int(client.select("INBOX", readonly=True)[1][0])


def until(predicate) -> bool:
    """Within 30 s; not up yet (OSError) or being delivered right now (QueueBusy) count as not yet."""
    return bool(wait_for(predicate, 30, ignore=(OSError, QueueBusy)))


def test_mail_in_its_own_process_serves_and_answers_the_web_admin_through_its_client(mail):
    child = mail.service.proc.pid
    assert child != os.getpid() and listener_pid(mail.port("submission")) == child
    send(mail, "bob@example.com", "from the child")
    assert inbox_count(mail, "bob") == 1
    client = client_for(mail.service)
    assert client.isolated and client.status().health in ("ok", "degraded")
    count, size = client.mailbox_usage("bob")
    assert count == 1 and size > 0
    send(mail, "friend@elsewhere.test", "waits in the queue")  # the smarthost does not answer
    [entry] = client.queue_entries()
    assert entry["recipients"] == ["friend@elsewhere.test"] and entry["sender"] == "alice@example.com"
    assert until(lambda: client.delete_queued(entry["id"]))
    assert client.queue_entries() == [] and client.delete_queued(entry["id"]) is False


def test_a_killed_mail_process_is_restarted_and_mail_flows_again(mail):
    child = mail.service.proc.pid
    os.kill(child, signal.SIGKILL)
    assert until(lambda: mail.service.alive and mail.service.proc.pid != child
                 and listener_pid(mail.port("submission")) == mail.service.proc.pid)
    assert until(lambda: send(mail, "carol@example.com", "after the restart") is None)
    assert inbox_count(mail, "carol") == 1
