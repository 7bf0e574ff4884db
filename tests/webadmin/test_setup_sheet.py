"""The user setup sheet (the phone password shown once, after creation or a reset) and the welcome mail,
received by the box's real mail service (Dovecot, read with imaplib) in the box's language."""
from __future__ import annotations

import email
import email.policy
import shutil
import tempfile
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from appliance.context import Context
from tests.services.mail.harness import PASSWORD, RunningMail, document, free_port, imap_session, wait_for
from tests.webadmin.helpers import post
from tests.webadmin.test_users import ANNA

ALICE = {**ANNA, "login": "alice", "full_name": "Alice A", "email": "", "extension": "205"}


def test_the_sheet_shows_the_phone_password_once(admin_client, runtime):
    assert post(admin_client, "/users/new", ANNA).status_code == 302
    secret = runtime.config.user("anna").sip_secret
    listing = admin_client.get("/users/").get_data(as_text=True)
    assert 'href="/users/anna/sheet"' in listing and 'id="sheet-pending"' in listing
    sheet = admin_client.get("/users/anna/sheet").get_data(as_text=True)
    assert secret in sheet and "<strong>201</strong>" in sheet and "*97" in sheet
    assert runtime.config.system.hostname in sheet and "/webphone/" in sheet
    again = admin_client.get("/users/anna/sheet").get_data(as_text=True)
    assert secret not in again and "shown once when the user was created" in again
    assert 'id="sheet-pending"' not in admin_client.get("/users/").get_data(as_text=True)

    reset = post(admin_client, "/users/anna/phone-secret", {}, form_path="/users/anna/edit")
    assert reset.status_code == 302 and reset.headers["Location"] == "/users/anna/sheet"
    new = runtime.config.user("anna").sip_secret
    assert new != secret
    sheet = admin_client.get("/users/anna/sheet").get_data(as_text=True)
    assert new in sheet and secret not in sheet
    assert new not in admin_client.get("/users/anna/sheet").get_data(as_text=True)


@pytest.fixture
def mail_ctx():
    top = Path(tempfile.mkdtemp(prefix="ob-welcome-"))
    top.chmod(0o711)
    yield Context(top / "var", lab=True)
    shutil.rmtree(top, ignore_errors=True)


@pytest.mark.slow
def test_the_welcome_mail_arrives_in_the_boxs_language(admin_client, runtime, mail_ctx):
    doc = document(lab_smtp_port=free_port())
    mail = RunningMail(mail_ctx, doc)
    try:
        def mutate(d):
            d["system"].update(mail_domain="example.com", language="fr")
            d.setdefault("mail", {})["lab_smtp_port"] = doc["mail"]["lab_smtp_port"]
        runtime.engine.update("admin", "mail to the test mail service", mutate)
        created = post(admin_client, "/users/new", {**ALICE, "welcome_mail": "on"})
        assert created.status_code == 302
        listing = admin_client.get("/users/").get_data(as_text=True)
        assert "A welcome e-mail was sent to alice@example.com." in listing
        secret = runtime.config.user("alice").sip_secret

        def inbox() -> list:
            with imap_session(mail.port("imap"), "alice", PASSWORD) as imap:
                imap.select("INBOX", readonly=True)
                return [email.message_from_bytes(imap.fetch(n, "(RFC822)")[1][0][1], policy=email.policy.default)
                        for n in imap.search(None, "ALL")[1][0].split()]
        [welcome] = wait_for(inbox)
        subject = str(make_header(decode_header(welcome["Subject"])))
        assert subject.startswith("Bienvenue")
        body = welcome.get_content()
        assert "Poste : 205" in body or "Poste: 205" in body, body
        assert "*97" in body and "alice@example.com" in body and "/webphone/" in body
        assert secret not in body
    finally:
        mail.stop()
