import smtplib
import time
from email.message import EmailMessage

import pytest

from services.mail import MailError
from services.mail.queue import MailQueue
from tests.services.mail.harness import PASSWORD, RunningMail, client_tls, document, stored, wait_for
from tests.services.mail.smarthost import Smarthost


@pytest.fixture
def carrier(tmp_path):
    host = Smarthost(tmp_path / "carrier-certs", refuse={"gone@foreign.test"})
    yield host
    host.close()


def send_as_alice(mail, recipients, subject="out"):
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as client:
        client.starttls(context=client_tls())
        client.login("alice", PASSWORD)
        client.sendmail("alice@example.com", recipients, f"Subject: {subject}\r\n\r\nhello\r\n".encode())


def test_outbound_mail_reaches_the_smarthost_with_starttls_and_auth(ctx, carrier):
    carrier.start()
    mail = RunningMail(ctx, document(smarthost=carrier.config()))
    try:
        send_as_alice(mail, ["friend@foreign.test", "bob@example.com"])
        assert wait_for(lambda: len(carrier.messages) == 1)
        sender, rcpts, data = carrier.messages[0]
        assert sender == "alice@example.com" and rcpts == ["friend@foreign.test"]
        assert b"Subject: out" in data
        assert len(stored(mail.ctx, "bob")) == 1  # the local copy did not go out
        assert wait_for(lambda: mail.service.queue_entries() == [])
        time.sleep(0.3)
        assert len(carrier.messages) == 1
    finally:
        mail.stop()


def test_retried_while_the_smarthost_is_down_and_nothing_lost_or_doubled_across_a_restart(ctx, carrier):
    mail = RunningMail(ctx, document(smarthost=carrier.config()))
    try:
        send_as_alice(mail, ["friend@foreign.test"], subject="survivor")
        assert wait_for(lambda: any(e.attempts >= 2 for e in mail.service.queue_entries()))
        [entry] = mail.service.queue_entries()
        assert "unreachable" in entry.last_error
    finally:
        mail.stop()
    carrier.start()
    time.sleep(0.2)
    assert carrier.messages == []  # the stopped service sends nothing
    mail = RunningMail(ctx, document(smarthost=carrier.config()))
    try:
        assert wait_for(lambda: len(carrier.messages) == 1)
        assert wait_for(lambda: mail.service.queue_entries() == [])
    finally:
        mail.stop()
    mail = RunningMail(ctx, document(smarthost=carrier.config()))  # and a second restart sends nothing again
    try:
        time.sleep(0.5)
        assert len(carrier.messages) == 1 and b"Subject: survivor" in carrier.messages[0][2]
    finally:
        mail.stop()


def test_permanent_refusal_bounces_to_the_local_sender(ctx, carrier):
    carrier.start()
    mail = RunningMail(ctx, document(smarthost=carrier.config()))
    try:
        send_as_alice(mail, ["gone@foreign.test", "friend@foreign.test"])
        assert wait_for(lambda: len(stored(mail.ctx, "alice")) == 1)
        bounce = stored(mail.ctx, "alice")[0].read_bytes()
        assert b"Undelivered Mail Returned to Sender" in bounce
        assert b"Final-Recipient: rfc822; gone@foreign.test" in bounce and b"550" in bounce
        assert b"Subject: out" in bounce  # the original headers
        assert [m[1] for m in carrier.messages] == [["friend@foreign.test"]]
        assert wait_for(lambda: mail.service.queue_entries() == [])
    finally:
        mail.stop()


@pytest.mark.parametrize("smtputf8", [True, False])
def test_non_ascii_addresses_go_out_with_smtputf8_or_bounce_clearly(ctx, tmp_path, smtputf8):
    carrier = Smarthost(tmp_path / "carrier-certs", smtputf8=smtputf8).start()
    mail = RunningMail(ctx, document(smarthost=carrier.config()))
    try:
        with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as client:
            client.starttls(context=client_tls())
            client.login("alice", PASSWORD)
            client.sendmail("alice@example.com", ["josé@foreign.test"], "Subject: café\r\n\r\nhi\r\n".encode(),
                            mail_options=["SMTPUTF8"])
        if smtputf8:
            assert wait_for(lambda: len(carrier.messages) == 1)
            assert carrier.messages[0][1] == ["josé@foreign.test"] and "café".encode() in carrier.messages[0][2]
        else:
            assert wait_for(lambda: len(stored(mail.ctx, "alice")) == 1)
            bounce = stored(mail.ctx, "alice")[0].read_bytes()
            assert b"5.6.7" in bounce and b"SMTPUTF8" in bounce and carrier.messages == []
        assert wait_for(lambda: mail.service.queue_entries() == [])
    finally:
        mail.stop()
        carrier.close()


def test_gives_up_after_the_queue_lifetime_and_bounces(ctx, carrier):
    mail = RunningMail(ctx, document(smarthost=carrier.config(), queue_lifetime_seconds=2))
    try:
        send_as_alice(mail, ["friend@foreign.test"])
        assert wait_for(lambda: len(stored(mail.ctx, "alice")) == 1)
        bounce = stored(mail.ctx, "alice")[0].read_bytes()
        assert b"gave up after 2 s" in bounce and b"Status: 4.4.7" in bounce
        assert wait_for(lambda: mail.service.queue_entries() == [])  # once Dovecot's 250 for the bounce is in
    finally:
        mail.stop()


def test_retry_now_and_delete(ctx, carrier):
    mail = RunningMail(ctx, document(smarthost=carrier.config(), retry_initial_seconds=3600,
                                     retry_max_seconds=3600))
    try:
        send_as_alice(mail, ["one@foreign.test"])
        send_as_alice(mail, ["two@foreign.test"])
        assert wait_for(lambda: [e.attempts for e in mail.service.queue_entries()] == [1, 1])
        first, second = mail.service.queue_entries()
        assert mail.service.delete_queued(first.id) is True
        assert mail.service.delete_queued(first.id) is False
        assert mail.service.retry_now("../../etc/passwd") is False
        carrier.start()
        assert mail.service.retry_now(second.id) is True
        assert wait_for(lambda: len(carrier.messages) == 1)
        assert carrier.messages[0][1] == ["two@foreign.test"]
        assert wait_for(lambda: mail.service.queue_entries() == [])
    finally:
        mail.stop()


def test_internal_submit_api(ctx, carrier):
    carrier.start()
    mail = RunningMail(ctx, document(smarthost=carrier.config()))
    try:
        message = EmailMessage()
        message["Subject"] = "Voicemail from 201"
        message["To"] = "bob.b@example.com, partner@foreign.test"
        message.set_content("You have a new voice message.")
        message.add_attachment(b"RIFF....WAVE", maintype="audio", subtype="wav", filename="msg.wav")
        mail.call(mail.service.submit("voicemail@example.com", ["bob.b@example.com", "partner@foreign.test"],
                                      message))
        [entry] = stored(mail.ctx, "bob")
        content = entry.read_bytes()
        assert b"Message-ID:" in content and b"Date:" in content and b"msg.wav" in content
        assert wait_for(lambda: len(carrier.messages) == 1)
        with pytest.raises(MailError):
            mail.call(mail.service.submit("voicemail@example.com", ["nobody@example.com"], EmailMessage()))
    finally:
        mail.stop()


def test_queue_recovery_drops_interrupted_enqueues_only(tmp_path):
    queue = MailQueue(tmp_path / "queue")
    kept = queue.enqueue("a@example.com", ["x@foreign.test"], b"Subject: kept\r\n\r\n.\r\n")
    (queue.msg_dir / "DEADBEEF0001.eml").write_bytes(b"interrupted before its state was written")
    (queue.state_dir / f".{kept.id}.json.tmp123").write_text("{half")
    (queue.state_dir / "BROKEN000001.json").write_text("not json")
    assert queue.recover() == 2  # the orphan message and the state without a message
    assert [e.id for e in queue.entries()] == [kept.id]
    assert queue.content(kept.id).startswith(b"Subject: kept")
    assert sorted(p.name for p in queue.state_dir.iterdir()) == [f"{kept.id}.json"]


@pytest.mark.slow
def test_kill_9_during_delivery_loses_nothing(ctx, carrier):
    """At-least-once: the service is killed while it is sending; after a restart every message arrives,
    and at most the one in flight at the kill arrives twice."""
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    count = 40
    queue = MailQueue(ctx.state_dir("mail") / "queue")
    for n in range(count):
        queue.enqueue("alice@example.com", ["friend@foreign.test"], f"Subject: msg {n}\r\n\r\nbody\r\n".encode())
    carrier.start()
    doc = document(smarthost=carrier.config())
    root = str(Path(__file__).resolve().parents[3])
    child = subprocess.Popen([sys.executable, "-m", "tests.services.mail.child", str(ctx.data_dir)], cwd=root,
                             env={**os.environ, "PYTHONPATH": root}, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        child.stdin.write(json.dumps(doc) + "\n")
        child.stdin.flush()
        assert json.loads(child.stdout.readline())
        assert wait_for(lambda: len(carrier.messages) >= count // 3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    sent_before = len(carrier.messages)
    assert sent_before < count, "the kill came too late to test anything"
    mail = RunningMail(ctx, doc)
    try:
        assert wait_for(lambda: mail.service.queue_entries() == [], timeout=60)
    finally:
        mail.stop()
    subjects = [data.split(b"\r\n", 1)[0] for _, _, data in carrier.messages]
    assert set(subjects) == {f"Subject: msg {n}".encode() for n in range(count)}  # nothing lost
    assert len(subjects) - count <= 1  # at most the message in flight was sent twice
