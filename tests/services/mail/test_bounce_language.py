"""The delivery status notice the box writes is in the box's default language (system.language): a real
submission refused for good by the smarthost, the notice read back over IMAP."""
import email
import email.policy
import imaplib
import smtplib

import pytest

from tests.services.mail.harness import PASSWORD, RunningMail, client_tls, document, stored, wait_for
from tests.services.mail.smarthost import Smarthost

EXPECTED = {
    "en": ("Undelivered Mail Returned to Sender", "Mail Delivery System",
           "Your message could not be delivered to these recipients:"),
    "fr": ("Message non distribué renvoyé à l'expéditeur", "Système de distribution du courrier",
           "Votre message n'a pas pu être distribué à ces destinataires :"),
    "zh_TW": ("無法投遞的郵件已退回寄件者", "郵件傳遞系統", "您的郵件無法投遞給下列收件者："),
}


@pytest.mark.parametrize("language", ["fr", "zh_TW"])
def test_bounce_is_written_in_the_box_language(ctx, tmp_path, language):
    carrier = Smarthost(tmp_path / "carrier-certs", refuse={"gone@foreign.test"})
    carrier.start()
    doc = document(smarthost=carrier.config())
    doc["system"]["language"] = language
    mail = RunningMail(ctx, doc)
    try:
        with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as client:
            client.starttls(context=client_tls())
            client.login("alice", PASSWORD)
            client.sendmail("alice@example.com", ["gone@foreign.test"], b"Subject: out\r\n\r\nhello\r\n")
        assert wait_for(lambda: len(stored(mail.ctx, "alice")) == 1)
        imap = imaplib.IMAP4("127.0.0.1", mail.port("imap"), timeout=10)
        imap.starttls(ssl_context=client_tls())
        imap.login("alice", PASSWORD)
        assert imap.select("INBOX") == ("OK", [b"1"])
        typ, data = imap.fetch("1", "(RFC822)")
        imap.logout()
        assert typ == "OK"
        notice = email.message_from_bytes(data[0][1], policy=email.policy.default)
        subject, mailer, intro = EXPECTED[language]
        assert notice["Subject"] == subject
        assert notice["From"].addresses[0].display_name == mailer
        assert notice["From"].addresses[0].addr_spec == "MAILER-DAEMON@example.com"
        readable, status, headers = notice.iter_parts()
        assert readable.get_content().startswith(intro) and "<gone@foreign.test>" in readable.get_content()
        assert status.get_content_type() == "message/delivery-status"  # the machine part stays RFC 3464
        assert b"Final-Recipient: rfc822; gone@foreign.test" in data[0][1] and b"Action: failed" in data[0][1]
        assert b"Subject: out" in data[0][1]  # the original headers
    finally:
        mail.stop()
        carrier.close()


def test_unknown_language_falls_back_to_english():
    from services.mail.messages import MESSAGES, text

    assert text("de", "bounce_subject") == EXPECTED["en"][0]
    for language, (subject, mailer, intro) in EXPECTED.items():
        assert MESSAGES[language] == {"mailer": mailer, "bounce_subject": subject, "bounce_intro": intro}
