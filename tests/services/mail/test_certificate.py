"""A renewed box certificate reaches new SMTPS, STARTTLS and IMAPS handshakes without a restart: sessions
opened before keep running, the listeners and Dovecot's master stay the same (smtplib, imaplib, ssl)."""
import imaplib
import smtplib
import socket
import ssl
import time

import pytest

from appliance.certs import box_certificate
from services.mail import certwatch
from services.mail.dovecotmaster import running_master
from tests.services.mail.harness import RunningMail, client_tls, document


@pytest.fixture
def mail(ctx, monkeypatch):
    monkeypatch.setattr(certwatch, "CHECK_SECONDS", 0.2)
    running = RunningMail(ctx, document())
    try:
        yield running
    finally:
        running.stop()


def file_der(ctx) -> bytes:
    cert, _ = box_certificate(ctx.data_dir, "box")
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def smtps_der(mail) -> bytes:
    with socket.create_connection(("127.0.0.1", mail.port("smtps")), timeout=10) as raw, \
            client_tls().wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True)


def starttls_der(mail) -> bytes:
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as smtp:
        smtp.starttls(context=client_tls())
        return smtp.sock.getpeercert(binary_form=True)


def imaps_der(mail) -> bytes:
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=10)
    try:
        return client.sock.getpeercert(binary_form=True)
    finally:
        client.logout()


def test_renewed_certificate_is_served_without_a_restart(mail):
    old = file_der(mail.ctx)
    assert smtps_der(mail) == starttls_der(mail) == imaps_der(mail) == old
    servers = dict(mail.service.servers)
    conf = str(mail.service.paths.etc / "dovecot.conf")
    master = running_master(mail.service.paths.base_dir, conf)
    before = smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10)
    try:
        before.ehlo("before.test")
        box_certificate(mail.ctx.data_dir, "box", ["box", "box.office.test", "localhost", "127.0.0.1", "192.0.2.77"])
        new = file_der(mail.ctx)
        assert new != old
        deadline = time.monotonic() + 30
        seen = ()
        while time.monotonic() < deadline:
            seen = (smtps_der(mail), starttls_der(mail), imaps_der(mail))
            if seen == (new, new, new):
                break
            time.sleep(0.3)
        assert seen == (new, new, new)
        assert before.noop()[0] == 250  # the session from before the renewal goes on
    finally:
        before.close()
    assert mail.service.servers == servers
    assert running_master(mail.service.paths.base_dir, conf) == master
