"""CSV import with "send each new user a welcome e-mail": the box's real mail service (Dovecot, read with imaplib)
delivers one welcome mail to each user the import added, none to a user it only changed."""
from __future__ import annotations

import email
import email.policy

import pytest

from tests.services.mail.harness import PASSWORDS, RunningMail, document, free_port, imap_session, wait_for
from tests.webadmin.test_setup_sheet import mail_ctx  # noqa: F401 (fixture: a lab context for the mail service)
from tests.webadmin.test_users_csv import confirm_form, upload

pytestmark = pytest.mark.slow


def inbox(mail, login: str) -> list:
    with imap_session(mail.port("imap"), login, PASSWORDS[login]) as imap:
        imap.select("INBOX", readonly=True)
        return [email.message_from_bytes(imap.fetch(n, "(RFC822)")[1][0][1], policy=email.policy.default)
                for n in imap.search(None, "ALL")[1][0].split()]


def test_imported_users_get_their_welcome_mail(admin_client, runtime, mail_ctx):  # noqa: F811
    doc = document(lab_smtp_port=free_port())
    mail = RunningMail(mail_ctx, doc)
    try:
        def mutate(d):
            d["system"].update(mail_domain="example.com")
            d.setdefault("mail", {})["lab_smtp_port"] = doc["mail"]["lab_smtp_port"]
        runtime.engine.update("admin", "mail to the test mail service", mutate)
        runtime.engine.update("admin", "carol exists", lambda d: d["users"].append(
            {"login": "carol", "full_name": "Carol", "extension": "207"}))
        page = upload(admin_client, "login,full_name,extension\nalice,Alice A,205\ncarol,Carol C,207\n")
        text = page.get_data(as_text=True)
        assert 'name="welcome_mail"' in text
        done = admin_client.post("/users/import/confirm", data={**confirm_form(text), "welcome_mail": "on"})
        body = done.get_data(as_text=True)
        assert done.status_code == 200 and 'id="welcome-sent"' in body, body
        assert "1 welcome e-mail sent" in body
        [welcome] = wait_for(lambda: inbox(mail, "alice"))
        assert "Welcome" in str(welcome["Subject"]) and "205" in welcome.get_content()
        assert inbox(mail, "carol") == []  # changed, not new: no welcome mail
    finally:
        mail.stop()
